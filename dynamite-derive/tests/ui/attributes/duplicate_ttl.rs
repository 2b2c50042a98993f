use dynamite::Entity;
use serde::{Deserialize, Serialize};

// `ttl` twice on one field.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "sessions")]
struct Session {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(ttl, ttl)]
    expires_at: i64,
}

fn main() {}
