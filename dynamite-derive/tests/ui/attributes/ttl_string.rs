use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "sessions")]
struct Session {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(ttl)]
    expires_at: String,
}

fn main() {}
