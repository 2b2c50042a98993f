use dynamite::Entity;
use serde::{Deserialize, Serialize};

// A second `stream = ..` is an error, not an override.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs", stream = "keys_only")]
#[dynamite(stream = "new_image")]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
