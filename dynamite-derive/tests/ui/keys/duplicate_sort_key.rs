use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `sort_key` twice on one field, in two attributes.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "events")]
struct Event {
    #[dynamite(partition_key)]
    stream: String,
    #[dynamite(sort_key)]
    #[dynamite(sort_key)]
    seq: u64,
}

fn main() {}
