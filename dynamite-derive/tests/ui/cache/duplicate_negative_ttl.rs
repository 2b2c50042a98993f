use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `negative_ttl` twice inside `cache(...)`, even with the same value.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
#[dynamite(cache(negative_ttl = "5s", negative_ttl = "5s"))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
