use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `ttl` twice inside `cache(...)`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
#[dynamite(cache(ttl = "30s", queries, ttl = "1m"))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
