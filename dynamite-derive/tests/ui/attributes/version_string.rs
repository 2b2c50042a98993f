use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "documents")]
struct Document {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(version)]
    version: String,
}

fn main() {}
