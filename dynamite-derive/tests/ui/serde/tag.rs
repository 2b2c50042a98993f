use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[serde(tag = "type")]
struct User {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
