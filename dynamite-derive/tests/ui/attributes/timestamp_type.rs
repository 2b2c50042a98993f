use dynamite::Entity;
use serde::{Deserialize, Serialize};

// Timestamps are epoch milliseconds: a String is refused, at the field's type.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "notes")]
struct Note {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(created_at)]
    created: String,
}

fn main() {}
