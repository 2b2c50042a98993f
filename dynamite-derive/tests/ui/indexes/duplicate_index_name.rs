use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "StatusIndex"))]
#[dynamite(global_index(name = "StatusIndex", projection = keys_only))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    status: String,
}

fn main() {}
