// serde_derive warns about the repeated name too; this test is about the derive's error.
#![allow(unreachable_patterns)]

use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "things")]
struct Thing {
    #[dynamite(partition_key)]
    id: String,
    x: String,
    #[serde(rename = "x")]
    other: String,
}

fn main() {}
