use dynamite::Entity;
use serde::{Deserialize, Serialize};

// One `index_key(...)` is one key of the index, not both.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "EmailIndex"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "EmailIndex", partition, sort))]
    email: String,
}

fn main() {}
