use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `index` and `partition` (`hash`) each twice inside one `index_key(...)`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "EmailIndex"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "EmailIndex", partition, index = "EmailIndex", hash))]
    email: String,
}

fn main() {}
