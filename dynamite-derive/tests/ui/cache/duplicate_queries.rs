use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `queries` twice inside `cache(...)`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
#[dynamite(cache(queries, ttl = "30s", queries))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
