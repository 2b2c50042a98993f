use dynamite::Entity;
use serde::{Deserialize, Serialize};

// One field as both keys of the table: DynamoDB refuses a key schema naming one attribute
// twice.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "events")]
struct Event {
    #[dynamite(partition_key, sort_key)]
    stream: String,
    seq: u64,
}

fn main() {}
