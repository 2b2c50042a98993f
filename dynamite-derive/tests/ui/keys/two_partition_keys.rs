use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(partition_key)]
    email: String,
}

fn main() {}
