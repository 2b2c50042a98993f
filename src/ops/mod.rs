//! Operations: each builder here holds a request description and does no I/O until awaited
//! (or `send()`). All of them run through the request pipeline (`crate::pipeline`).

pub(crate) mod batch_get;
mod batch_write;
mod delete;
mod get;
mod put;
mod transact;
mod update;

pub use crate::query::{Find, IndexName};
pub use crate::write::{CancellationReason, TransactAction, WriteKind, WriteOp};
pub use batch_get::{BatchGet, BatchGetOutput, BatchStats, MultiBatchGet, MultiBatchGetOutput};
pub use batch_write::{BatchWrite, BatchWriteOutput};
pub use delete::DeleteItem;
pub use get::{GetItem, GetItemFuture};
pub use put::PutItem;
pub use transact::{TransactGet, TransactGetOutput, TransactWrite};
pub use update::UpdateItem;

use crate::{Entity, Item, Result};

/// What a write returns: nothing (the default), or the item as it was or is.
pub mod returns {
    /// Return nothing (the default).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Nothing;
    /// Return the item as it was before the write (`ALL_OLD`).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Old;
    /// Return the item as it is after the update (`ALL_NEW`).
    #[derive(Debug, Clone, Copy, Default)]
    pub struct New;
}

/// Decodes an optional returned item.
pub(crate) fn decode_optional<E: Entity>(item: Option<Item>) -> Result<Option<E>> {
    match item {
        Some(item) if !item.is_empty() => E::from_item(item).map(Some),
        _ => Ok(None),
    }
}
