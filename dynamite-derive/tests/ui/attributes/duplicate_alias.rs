// serde_derive warns about the repeated name too; this test is about the derive's error.
#![allow(unreachable_patterns)]

use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    name: String,
    #[serde(alias = "name")]
    nick: String,
}

fn main() {}
