use dynamite::Entity;
use serde::{Deserialize, Serialize};

// A second `table`, even in another #[dynamite] attribute, is an error, not an override.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(table = "people")]
struct User {
    #[dynamite(partition_key)]
    id: String,
}

fn main() {}
