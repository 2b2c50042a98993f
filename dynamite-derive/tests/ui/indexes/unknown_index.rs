use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "Nope", partition))]
    status: String,
}

fn main() {}
