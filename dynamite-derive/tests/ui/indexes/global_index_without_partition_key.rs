use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "StatusIndex"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "StatusIndex", sort))]
    created_at: i64,
    status: String,
}

fn main() {}
