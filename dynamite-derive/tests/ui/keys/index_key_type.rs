use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `Option` is fine for an index key, but not of a type no key can have.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "ActiveIndex"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "ActiveIndex", partition))]
    active: Option<bool>,
}

fn main() {}
