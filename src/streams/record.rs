//! Change records: [`Record`] (untyped: key and images as items, whatever the stream's view
//! type) and [`ChangeRecord`] (decoded through [`FromImage`] into an entity, or later a
//! collection of entities).

use std::time::{Duration, SystemTime};

use crate::{Entity, Error, Item, Result};

/// What a change did to its item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A new item was written (`INSERT`).
    Insert,
    /// An existing item was changed (`MODIFY`).
    Modify,
    /// An item was deleted (`REMOVE`), by a writer or by TTL.
    Remove,
}

impl ChangeKind {
    /// The stream's own name of the change: `"INSERT"`, `"MODIFY"` or `"REMOVE"`.
    pub const fn name(self) -> &'static str {
        match self {
            ChangeKind::Insert => "INSERT",
            ChangeKind::Modify => "MODIFY",
            ChangeKind::Remove => "REMOVE",
        }
    }

    /// Reads the stream's name of a change.
    pub(crate) fn parse(name: &str) -> Result<Self> {
        match name {
            "INSERT" => Ok(ChangeKind::Insert),
            "MODIFY" => Ok(ChangeKind::Modify),
            "REMOVE" => Ok(ChangeKind::Remove),
            other => Err(malformed(format!("unknown event name {other:?}"))),
        }
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One change of one item, as the table's stream (or a Lambda event) reports it, not yet
/// decoded: the item's key (always there, whatever the stream's view type) and the images the
/// view type includes. [`decode`](Self::decode) turns it into a typed [`ChangeRecord`].
///
/// ```
/// use dynamite::streams::{ChangeKind, Record};
///
/// fn describe(record: &Record) -> String {
///     let removed = record.kind == ChangeKind::Remove;
///     format!("{} #{} (removed: {removed})", record.kind, record.sequence_number)
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// What the change did.
    pub kind: ChangeKind,
    /// The key attributes of the item changed.
    pub keys: Item,
    /// The item before the change (`MODIFY` and `REMOVE`, with view type `OLD_IMAGE` or
    /// `NEW_AND_OLD_IMAGES`).
    pub old_image: Option<Item>,
    /// The item after the change (`INSERT` and `MODIFY`, with view type `NEW_IMAGE` or
    /// `NEW_AND_OLD_IMAGES`).
    pub new_image: Option<Item>,
    /// The record's sequence number in its shard: a decimal number, increasing in a shard.
    pub sequence_number: String,
    /// When DynamoDB wrote the record (to the second, or finer), when reported.
    pub approximate_creation_time: Option<SystemTime>,
    /// The record's unique id, when reported.
    pub event_id: Option<String>,
    /// `true` for a `REMOVE` made by DynamoDB's TTL process rather than by a writer.
    pub removed_by_ttl: bool,
}

impl Record {
    /// How long ago DynamoDB wrote the record (the stream's lag as seen now), when the record
    /// carries its creation time.
    pub fn age(&self) -> Option<Duration> {
        let created = self.approximate_creation_time?;
        Some(
            SystemTime::now()
                .duration_since(created)
                .unwrap_or_default(),
        )
    }

    /// Decodes the images into `T` (an [`Entity`], or any [`FromImage`]): `INSERT` needs the
    /// new image, `REMOVE` the old one, `MODIFY` both, so typed records need the view type
    /// `NEW_AND_OLD_IMAGES` (a missing image is an [`Error::Conversion`] naming it). Streams
    /// of other view types are read as [`Record`]s.
    ///
    /// ```
    /// # use dynamite::Entity;
    /// # #[derive(Entity, serde::Serialize, serde::Deserialize, Debug)]
    /// # #[dynamite(table = "users")]
    /// # struct User { #[dynamite(partition_key)] id: String, name: String }
    /// use dynamite::streams::{Change, Record};
    ///
    /// fn apply(record: Record) -> dynamite::Result<()> {
    ///     match record.decode::<User>()?.change {
    ///         Change::Insert(new) => println!("welcome {}", new.name),
    ///         Change::Modify(old, new) => println!("{} is now {}", old.name, new.name),
    ///         Change::Remove(old) => println!("goodbye {}", old.name),
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn decode<T: FromImage>(self) -> Result<ChangeRecord<T>> {
        let image = |image: Option<Item>, which: &str| -> Result<T> {
            let image = image.ok_or_else(|| missing_image(std::any::type_name::<T>(), which))?;
            T::from_image(image)
        };
        let change = match self.kind {
            ChangeKind::Insert => Change::Insert(image(self.new_image, "NewImage")?),
            ChangeKind::Modify => Change::Modify(
                image(self.old_image, "OldImage")?,
                image(self.new_image, "NewImage")?,
            ),
            ChangeKind::Remove => Change::Remove(image(self.old_image, "OldImage")?),
        };
        Ok(ChangeRecord {
            change,
            keys: self.keys,
            sequence_number: self.sequence_number,
            approximate_creation_time: self.approximate_creation_time,
            removed_by_ttl: self.removed_by_ttl,
        })
    }
}

/// What a change did, with the images decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<T> {
    /// A new item: its image.
    Insert(T),
    /// A changed item: its image before, then after.
    Modify(T, T),
    /// A deleted item: its last image.
    Remove(T),
}

impl<T> Change<T> {
    /// Insert, modify or remove.
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::Insert(_) => ChangeKind::Insert,
            Change::Modify(..) => ChangeKind::Modify,
            Change::Remove(_) => ChangeKind::Remove,
        }
    }

    /// The item after the change (`None` for a remove).
    pub fn new_image(&self) -> Option<&T> {
        match self {
            Change::Insert(new) | Change::Modify(_, new) => Some(new),
            Change::Remove(_) => None,
        }
    }

    /// The item before the change (`None` for an insert).
    pub fn old_image(&self) -> Option<&T> {
        match self {
            Change::Modify(old, _) | Change::Remove(old) => Some(old),
            Change::Insert(_) => None,
        }
    }
}

/// A typed change: [`Record::decode`]'s output.
///
/// ```
/// use dynamite::streams::{Change, ChangeRecord};
///
/// fn log(record: &ChangeRecord<dynamite::Item>) {
///     if let Change::Modify(old, new) = &record.change {
///         println!("#{}: {} -> {} attributes", record.sequence_number, old.len(), new.len());
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ChangeRecord<T> {
    /// The change, with its images.
    pub change: Change<T>,
    /// The key attributes of the item changed.
    pub keys: Item,
    /// The record's sequence number in its shard.
    pub sequence_number: String,
    /// When DynamoDB wrote the record, when reported.
    pub approximate_creation_time: Option<SystemTime>,
    /// `true` for a remove made by DynamoDB's TTL process.
    pub removed_by_ttl: bool,
}

/// Values a stream image (an item) decodes into: every [`Entity`] (through
/// [`Entity::from_item`]), and [`Item`] itself (the image as it is). A type holding several
/// entities of one table (one variant per entity type) implements it by choosing the entity
/// from the image, so typed records of a whole table decode the same way.
///
/// ```
/// use dynamite::streams::FromImage;
/// use dynamite::Item;
///
/// /// The image's attribute names only.
/// struct Names(Vec<String>);
///
/// impl FromImage for Names {
///     fn from_image(image: Item) -> dynamite::Result<Self> {
///         Ok(Names(image.into_keys().collect()))
///     }
/// }
/// ```
pub trait FromImage: Sized {
    /// Decodes one image.
    fn from_image(image: Item) -> Result<Self>;
}

impl<E: Entity> FromImage for E {
    fn from_image(image: Item) -> Result<Self> {
        E::from_item(image)
    }
}

impl FromImage for Item {
    fn from_image(image: Item) -> Result<Self> {
        Ok(image)
    }
}

/// The principal of TTL deletions in a record's user identity.
pub(crate) const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// A record the stream (or event) sent that cannot be read.
pub(crate) fn malformed(reason: String) -> Error {
    Error::Conversion {
        entity: "stream record".to_owned(),
        attribute: "record".to_owned(),
        reason,
    }
}

fn missing_image(decoded: &str, which: &str) -> Error {
    Error::Conversion {
        entity: decoded.to_owned(),
        attribute: which.to_owned(),
        reason: "the stream record has no such image: typed records need the stream view type \
                 NEW_AND_OLD_IMAGES (read other streams as untyped records)"
            .to_owned(),
    }
}

/// Records from the DynamoDB Streams API.
pub(crate) fn from_sdk(record: aws_sdk_dynamodbstreams::types::Record) -> Result<Record> {
    use super::convert::from_stream_item;
    let kind = record
        .event_name
        .as_ref()
        .ok_or_else(|| malformed("no event name".to_owned()))?;
    let kind = ChangeKind::parse(kind.as_str())?;
    let removed_by_ttl = record
        .user_identity
        .as_ref()
        .is_some_and(|i| i.principal_id() == Some(TTL_PRINCIPAL));
    let change = record
        .dynamodb
        .ok_or_else(|| malformed("no dynamodb part".to_owned()))?;
    Ok(Record {
        kind,
        keys: from_stream_item(change.keys.unwrap_or_default())?,
        old_image: change.old_image.map(from_stream_item).transpose()?,
        new_image: change.new_image.map(from_stream_item).transpose()?,
        sequence_number: change
            .sequence_number
            .ok_or_else(|| malformed("no sequence number".to_owned()))?,
        approximate_creation_time: change
            .approximate_creation_date_time
            .and_then(|t| SystemTime::try_from(t).ok()),
        event_id: record.event_id,
        removed_by_ttl,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodbstreams::types as sdk;

    use super::*;

    fn image(name: &str) -> HashMap<String, sdk::AttributeValue> {
        HashMap::from([
            ("id".to_owned(), sdk::AttributeValue::S("u1".into())),
            ("name".to_owned(), sdk::AttributeValue::S(name.into())),
        ])
    }

    fn sdk_record(kind: sdk::OperationType, old: Option<&str>, new: Option<&str>) -> sdk::Record {
        let change = sdk::StreamRecord::builder()
            .set_keys(Some(HashMap::from([(
                "id".to_owned(),
                sdk::AttributeValue::S("u1".into()),
            )])))
            .set_old_image(old.map(image))
            .set_new_image(new.map(image))
            .sequence_number("100")
            .approximate_creation_date_time(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .build();
        sdk::Record::builder()
            .event_name(kind)
            .event_id("e1")
            .dynamodb(change)
            .build()
    }

    fn names(change: &Change<Item>) -> (Option<String>, Option<String>) {
        let name = |i: Option<&Item>| {
            i.and_then(|i| i.get("name"))
                .map(|v| v.as_s().unwrap().clone())
        };
        (name(change.old_image()), name(change.new_image()))
    }

    #[test]
    fn every_change_kind_decodes_with_its_images() {
        let cases = [
            (
                sdk::OperationType::Insert,
                None,
                Some("a"),
                ChangeKind::Insert,
            ),
            (
                sdk::OperationType::Modify,
                Some("a"),
                Some("b"),
                ChangeKind::Modify,
            ),
            (
                sdk::OperationType::Remove,
                Some("b"),
                None,
                ChangeKind::Remove,
            ),
        ];
        for (op, old, new, kind) in cases {
            let record = from_sdk(sdk_record(op, old, new)).unwrap();
            assert_eq!(record.kind, kind);
            assert_eq!(record.keys["id"], AttributeValue::S("u1".into()));
            assert_eq!(record.sequence_number, "100");
            assert_eq!(record.event_id.as_deref(), Some("e1"));
            assert_eq!(
                record.approximate_creation_time,
                Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            );
            let typed = record.decode::<Item>().unwrap();
            assert_eq!(typed.change.kind(), kind);
            assert_eq!(
                names(&typed.change),
                (old.map(str::to_owned), new.map(str::to_owned))
            );
        }
    }

    #[test]
    fn a_missing_image_names_the_view_type_to_use() {
        let record = from_sdk(sdk_record(sdk::OperationType::Modify, None, Some("b"))).unwrap();
        assert_eq!(record.old_image, None);
        let err = record.decode::<Item>().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("OldImage") && text.contains("NEW_AND_OLD_IMAGES"),
            "{text}"
        );
    }

    #[test]
    fn ttl_removals_are_marked() {
        let mut record = sdk_record(sdk::OperationType::Remove, Some("a"), None);
        record.user_identity = Some(
            sdk::Identity::builder()
                .principal_id(TTL_PRINCIPAL)
                .r#type("Service")
                .build(),
        );
        assert!(from_sdk(record).unwrap().removed_by_ttl);
    }

    #[test]
    fn a_record_without_its_parts_is_refused() {
        let record = sdk::Record::builder()
            .event_name(sdk::OperationType::Insert)
            .build();
        assert!(from_sdk(record).is_err());
        assert!(ChangeKind::parse("UPSERT").is_err());
    }
}
