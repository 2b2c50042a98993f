//! [`Operation`]: the DynamoDB operations dynamite sends, named once. Errors, tracing spans,
//! query plans and retries refer to operations by this enum, never by strings.

use std::fmt;

/// A DynamoDB operation.
///
/// ```
/// use dynamite::Operation;
///
/// assert_eq!(Operation::PutItem.to_string(), "PutItem");
/// assert!(Operation::Query.is_read());
/// assert!(!Operation::BatchWriteItem.is_read());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// One item by primary key.
    GetItem,
    /// Write a whole item.
    PutItem,
    /// Change attributes of one item.
    UpdateItem,
    /// Delete one item.
    DeleteItem,
    /// Items of one partition of the table or an index.
    Query,
    /// Every item of the table or an index.
    Scan,
    /// Up to 100 items by key, across tables.
    BatchGetItem,
    /// Up to 25 puts and deletes, across tables.
    BatchWriteItem,
    /// Up to 100 items read in one snapshot.
    TransactGetItems,
    /// Up to 100 writes and condition checks, all or none.
    TransactWriteItems,
    /// Create a table.
    CreateTable,
    /// Read a table's description.
    DescribeTable,
    /// Delete a table.
    DeleteTable,
    /// Change a table (add a global secondary index).
    UpdateTable,
    /// Enable or disable TTL on a table.
    UpdateTimeToLive,
    /// Read a table's TTL setting.
    DescribeTimeToLive,
    /// List the shards of a table's stream (DynamoDB Streams).
    DescribeStream,
    /// Get an iterator into a shard of a stream (DynamoDB Streams).
    GetShardIterator,
    /// Read records of a stream's shard (DynamoDB Streams).
    GetRecords,
}

impl Operation {
    /// The operation's name in DynamoDB's API (`"PutItem"`).
    pub const fn name(self) -> &'static str {
        match self {
            Operation::GetItem => "GetItem",
            Operation::PutItem => "PutItem",
            Operation::UpdateItem => "UpdateItem",
            Operation::DeleteItem => "DeleteItem",
            Operation::Query => "Query",
            Operation::Scan => "Scan",
            Operation::BatchGetItem => "BatchGetItem",
            Operation::BatchWriteItem => "BatchWriteItem",
            Operation::TransactGetItems => "TransactGetItems",
            Operation::TransactWriteItems => "TransactWriteItems",
            Operation::CreateTable => "CreateTable",
            Operation::DescribeTable => "DescribeTable",
            Operation::DeleteTable => "DeleteTable",
            Operation::UpdateTable => "UpdateTable",
            Operation::UpdateTimeToLive => "UpdateTimeToLive",
            Operation::DescribeTimeToLive => "DescribeTimeToLive",
            Operation::DescribeStream => "DescribeStream",
            Operation::GetShardIterator => "GetShardIterator",
            Operation::GetRecords => "GetRecords",
        }
    }

    /// `true` for operations that change nothing (reads, `DescribeTable`, the stream reads).
    pub const fn is_read(self) -> bool {
        matches!(
            self,
            Operation::GetItem
                | Operation::Query
                | Operation::Scan
                | Operation::BatchGetItem
                | Operation::TransactGetItems
                | Operation::DescribeTable
                | Operation::DescribeTimeToLive
                | Operation::DescribeStream
                | Operation::GetShardIterator
                | Operation::GetRecords
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
