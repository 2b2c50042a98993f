use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `name` twice inside one `global_index(...)`.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "EmailIndex", name = "MailIndex"))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "EmailIndex", partition))]
    email: String,
}

fn main() {}
