use dynamite::Entity;
use serde::{Deserialize, Serialize};

// Cache durations are a whole number with ms, s, m or h.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
#[dynamite(cache(ttl = "30 seconds"))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
