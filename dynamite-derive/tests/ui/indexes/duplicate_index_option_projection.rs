use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `projection` twice inside one `local_index(...)`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(local_index(name = "ByAge", projection = keys_only, projection = all))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    created_at: i64,
    #[dynamite(index_key(index = "ByAge", sort))]
    age: u32,
}

fn main() {}
