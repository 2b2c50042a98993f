// serde_derive warns about the repeated name too; this test is about the derive's error.
#![allow(unreachable_patterns)]

use dynamite::Entity;
use serde::{Deserialize, Serialize};

// Every problem is reported in one pass, not just the first.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users", table = "people")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(primary)]
    email: String,
    name: String,
    #[serde(rename = "name")]
    display_name: String,
}

fn main() {}
