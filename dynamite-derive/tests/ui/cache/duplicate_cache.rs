use dynamite::Entity;
use serde::{Deserialize, Serialize};

// A second `cache(...)` is an error, not an override.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
#[dynamite(cache(ttl = "30s"))]
#[dynamite(cache(off))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
