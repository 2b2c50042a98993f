use dynamite::Entity;
use serde::{Deserialize, Serialize};

// A stream's view type is one of DynamoDB's four.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "docs", stream = "new_and_old")]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
