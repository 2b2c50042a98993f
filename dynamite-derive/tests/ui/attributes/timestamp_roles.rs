use dynamite::Entity;
use serde::{Deserialize, Serialize};

// One field cannot be both timestamps, nor a timestamp and a key.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "notes")]
struct Note {
    #[dynamite(partition_key, created_at)]
    id: u64,
    #[dynamite(updated_at, version)]
    touched: u64,
}

fn main() {}
