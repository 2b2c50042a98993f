use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
struct User {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
