use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "orders")]
#[dynamite(local_index(name = "ByTotal"))]
struct Order {
    #[dynamite(partition_key)]
    customer: String,
    #[dynamite(sort_key)]
    id: String,
    #[dynamite(index_key(index = "ByTotal", partition))]
    region: String,
    #[dynamite(index_key(index = "ByTotal", sort))]
    total: u64,
}

fn main() {}
