//! Entities used by more than one topic. Entities of one topic live in its module.

use dynamite::Entity;
use serde::{Deserialize, Serialize};

/// A plain item: a string key and a number (faults, write safety, paused time).
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "things")]
pub(crate) struct Thing {
    #[dynamite(partition_key)]
    pub id: String,
    pub n: i64,
}

/// An account with a balance (batches, transactions).
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "accounts")]
pub(crate) struct Account {
    #[dynamite(partition_key)]
    pub id: String,
    pub balance: i64,
}
