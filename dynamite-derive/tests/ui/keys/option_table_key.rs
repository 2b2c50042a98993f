use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `Option` keys are for sparse index keys only: every item must have its table key.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: Option<String>,
}

fn main() {}
