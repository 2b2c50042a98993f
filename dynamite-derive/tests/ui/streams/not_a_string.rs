use dynamite::Entity;
use serde::{Deserialize, Serialize};

// The view type is a string.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs", stream = keys_only)]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
