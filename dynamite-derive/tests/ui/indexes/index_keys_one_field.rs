use dynamite::Entity;
use serde::{Deserialize, Serialize};

// One field as both keys of a global index, and a local index sorted by the table's partition
// key: each names one attribute twice.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "EmailIndex"))]
#[dynamite(local_index(name = "ById"))]
struct User {
    #[dynamite(partition_key)]
    #[dynamite(index_key(index = "ById", sort))]
    id: String,
    #[dynamite(sort_key)]
    at: u64,
    #[dynamite(index_key(index = "EmailIndex", partition))]
    #[dynamite(index_key(index = "EmailIndex", sort))]
    email: String,
}

fn main() {}
