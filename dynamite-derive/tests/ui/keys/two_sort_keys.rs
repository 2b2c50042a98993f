use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "events")]
struct Event {
    #[dynamite(partition_key)]
    stream: String,
    #[dynamite(sort_key)]
    seq: u64,
    #[dynamite(range_key)]
    at: i64,
}

fn main() {}
