use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `off` twice inside `cache(...)`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs")]
#[dynamite(cache(off, off))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
