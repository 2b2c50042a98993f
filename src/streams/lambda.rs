//! Lambda's DynamoDB stream events (`aws_lambda_events::dynamodb`) as [`Record`]s: the same
//! records the consumer reads, so one handler serves both.

use std::time::SystemTime;

use aws_lambda_events::dynamodb::{Event, EventRecord};

use super::convert::from_lambda_item;
use super::record::{malformed, ChangeKind, Record, TTL_PRINCIPAL};
use crate::Result;

/// Every record of a Lambda DynamoDB stream event, in the event's order.
///
/// ```
/// use dynamite::streams::{self, Change};
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize, Debug)]
/// # #[dynamite(table = "users")]
/// # struct User { #[dynamite(partition_key)] id: String, name: String }
///
/// // In a Lambda function's handler (the `lambda_runtime` crate passes the event in).
/// fn handle(event: streams::aws_lambda_events::dynamodb::Event) -> dynamite::Result<()> {
///     for record in streams::records_from_lambda(event)? {
///         if let Change::Insert(user) = record.decode::<User>()?.change {
///             println!("new user {}", user.name);
///         }
///     }
///     Ok(())
/// }
/// ```
pub fn records_from_lambda(event: Event) -> Result<Vec<Record>> {
    event.records.into_iter().map(record_from_lambda).collect()
}

/// One record of a Lambda DynamoDB stream event.
///
/// ```
/// # fn demo(event_record: dynamite::streams::aws_lambda_events::dynamodb::EventRecord) -> dynamite::Result<()> {
/// let record = dynamite::streams::record_from_lambda(event_record)?;
/// println!("{} {:?}", record.kind, record.keys);
/// # Ok(()) }
/// ```
pub fn record_from_lambda(record: EventRecord) -> Result<Record> {
    let kind = ChangeKind::parse(&record.event_name)?;
    let removed_by_ttl = record
        .user_identity
        .as_ref()
        .is_some_and(|i| i.principal_id == TTL_PRINCIPAL);
    let change = record.change;
    // The event leaves absent images (and a missing creation time) at their defaults.
    let image = |item: serde_dynamo::Item| {
        let item: std::collections::HashMap<String, serde_dynamo::AttributeValue> = item.into();
        (!item.is_empty()).then(|| from_lambda_item(item))
    };
    let created = SystemTime::from(change.approximate_creation_date_time);
    Ok(Record {
        kind,
        keys: image(change.keys).unwrap_or_default(),
        old_image: image(change.old_image),
        new_image: image(change.new_image),
        sequence_number: change
            .sequence_number
            .ok_or_else(|| malformed("no sequence number".to_owned()))?,
        approximate_creation_time: (created != SystemTime::UNIX_EPOCH).then_some(created),
        event_id: Some(record.event_id).filter(|id| !id.is_empty()),
        removed_by_ttl,
    })
}
