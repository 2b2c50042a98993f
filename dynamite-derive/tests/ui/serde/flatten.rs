use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Address {
    city: String,
}

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[serde(flatten)]
    address: Address,
}

fn main() {}
