use dynamite::Entity;
use serde::{Deserialize, Serialize};

// Both names give the index handle `User::STATUS_INDEX`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "StatusIndex"))]
#[dynamite(global_index(name = "status-index"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    #[dynamite(index_key(index = "status-index", partition))]
    status: String,
}

fn main() {}
