use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    id: String,
    #[dynamite(sort_key)]
    created_at: i64,
}

fn main() {}
