use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `hash_key` is another name for `partition_key`: both on one field is a duplicate.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key, hash_key)]
    id: String,
}

fn main() {}
