use dynamite::Entity;
use serde::{Deserialize, Serialize};

// A skipped field is not stored, so an index cannot project it.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "StatusIndex", projection = include(cache)))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    status: String,
    #[serde(skip)]
    cache: String,
}

fn main() {}
