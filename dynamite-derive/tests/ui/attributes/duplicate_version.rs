use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `version` twice on one field, in two attributes.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(version)]
    #[dynamite(version)]
    version: u64,
}

fn main() {}
