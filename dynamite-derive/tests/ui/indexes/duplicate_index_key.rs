use dynamite::Entity;
use serde::{Deserialize, Serialize};

// The same key of the same index twice on one field.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "EmailIndex"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "EmailIndex", partition))]
    #[dynamite(index_key(index = "EmailIndex", hash))]
    email: String,
}

fn main() {}
