use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "flags")]
struct Flag {
    #[dynamite(partition_key)]
    enabled: bool,
}

fn main() {}
