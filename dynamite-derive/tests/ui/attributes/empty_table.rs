use dynamite::Entity;
use serde::{Deserialize, Serialize};

// Only the empty name is reported, not also "missing table name".
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "")]
struct User {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
