use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "groups")]
struct Group {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    members: Vec<String>,
}

fn main() {}
