//! Item operations, tables, optimistic locking and validation against the local server.

use std::collections::{BTreeSet, HashSet};

use crate::support;
use aws_sdk_dynamodb::types::{AttributeValue, ProjectionType};
use dynamite::{BillingMode, Binary, Client, Entity, Error, Key};
use serde::{Deserialize, Serialize};

mod keys;
mod tables;
mod timestamps;
mod values;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "StatusIndex", projection = include(name, email)))]
#[dynamite(global_index(name = "EmailIndex", projection = keys_only))]
#[dynamite(local_index(name = "ByScore", projection = all))]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(sort_key)]
    region: String,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    status: String,
    #[dynamite(index_key(index = "StatusIndex", sort))]
    created_at: i64,
    #[dynamite(index_key(index = "ByScore", sort))]
    score: u32,
    name: String,
    #[serde(rename = "mail")]
    #[dynamite(index_key(index = "EmailIndex", partition))]
    email: Option<String>,
    logins: u64,
    tags: Vec<String>,
    roles: HashSet<String>,
    lucky: BTreeSet<i64>,
    nickname: Option<String>,
    avatar: Option<Binary>,
    #[dynamite(ttl)]
    expires_at: Option<i64>,
    #[dynamite(version)]
    version: u64,
}

fn ada() -> User {
    User {
        id: "u1".into(),
        region: "eu".into(),
        status: "active".into(),
        created_at: 100,
        score: 7,
        name: "Ada".into(),
        email: Some("ada@example.com".into()),
        logins: 0,
        tags: vec!["math".into()],
        roles: ["admin".to_string()].into(),
        lucky: [3, 7].into(),
        nickname: None,
        avatar: Some(Binary(vec![1, 2, 3])),
        expires_at: Some(4_000_000_000),
        version: 0,
    }
}

/// A simple entity without a version attribute.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "notes")]
struct Note {
    #[dynamite(partition_key)]
    id: String,
    body: String,
    size: Option<f64>,
}

#[tokio::test]
async fn create_table_from_metadata() {
    let db = support::setup::<User>().await;
    let table = db.table_name("users");
    let desc = db
        .sdk()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let desc = desc.table().unwrap();
    let keys: Vec<_> = desc
        .key_schema()
        .iter()
        .map(|k| (k.attribute_name(), k.key_type().as_str()))
        .collect();
    assert_eq!(keys, vec![("id", "HASH"), ("region", "RANGE")]);
    let mut defs: Vec<_> = desc
        .attribute_definitions()
        .iter()
        .map(|d| {
            (
                d.attribute_name().to_owned(),
                d.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    defs.sort();
    assert_eq!(
        defs,
        [
            ("created_at", "N"),
            ("id", "S"),
            ("mail", "S"),
            ("region", "S"),
            ("score", "N"),
            ("status", "S")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let gsis = desc.global_secondary_indexes();
    assert_eq!(gsis.len(), 2);
    let status = gsis
        .iter()
        .find(|g| g.index_name() == Some("StatusIndex"))
        .unwrap();
    let projection = status.projection().unwrap();
    assert_eq!(projection.projection_type(), Some(&ProjectionType::Include));
    let mut non_key = projection.non_key_attributes().to_vec();
    non_key.sort();
    assert_eq!(non_key, vec!["mail", "name"]);
    let email = gsis
        .iter()
        .find(|g| g.index_name() == Some("EmailIndex"))
        .unwrap();
    assert_eq!(
        email.projection().unwrap().projection_type(),
        Some(&ProjectionType::KeysOnly)
    );
    let lsis = desc.local_secondary_indexes();
    assert_eq!(lsis.len(), 1);
    assert_eq!(lsis[0].index_name(), Some("ByScore"));
    assert_eq!(
        desc.billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str()),
        Some("PAY_PER_REQUEST")
    );
    let ttl = db
        .sdk()
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(
        ttl.time_to_live_status().map(|s| s.as_str()),
        Some("ENABLED")
    );

    // ensure_table on an existing table is a no-op, twice.
    User::ensure_table(&db).await.unwrap();
    User::ensure_table(&db).await.unwrap();
    // create_table on an existing one is an error from the service, with context.
    let err = User::create_table(&db).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Sdk {
                operation: dynamite::Operation::CreateTable,
                ..
            }
        ),
        "{err:?}"
    );

    User::delete_table(&db).await.unwrap();
    let err = db
        .sdk()
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err.into_service_error().meta().code(),
        Some("ResourceNotFoundException")
    );
    User::delete_table(&db).if_exists().await.unwrap();
    assert!(matches!(
        User::delete_table(&db).await,
        Err(Error::Sdk { .. })
    ));
}

#[tokio::test]
async fn ensure_table_creates_when_missing_and_provisioned_billing() {
    let db = support::client().await;
    Note::ensure_table(&db)
        .billing(BillingMode::Provisioned { read: 5, write: 3 })
        .await
        .unwrap();
    let desc = db
        .sdk()
        .describe_table()
        .table_name(db.table_name("notes"))
        .send()
        .await
        .unwrap();
    let throughput = desc.table().unwrap().provisioned_throughput().unwrap();
    assert_eq!(throughput.read_capacity_units(), Some(5));
    assert_eq!(throughput.write_capacity_units(), Some(3));
    Note::delete_table(&db).await.unwrap();
}

#[tokio::test]
async fn put_get_round_trip_with_projection_and_consistency() {
    let db = support::setup::<User>().await;
    let user = ada();
    user.put(&db).await.unwrap();
    let got = User::get(&db, User::key("u1", "eu"))
        .consistent()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        User {
            version: 1,
            ..user.clone()
        }
    );
    assert!(User::get(&db, User::key("u1", "us"))
        .await
        .unwrap()
        .is_none());

    // The stored item has DynamoDB sets, no attribute for None, the renamed attribute.
    let raw = db
        .sdk()
        .get_item()
        .table_name(db.table_name("users"))
        .key("id", AttributeValue::S("u1".into()))
        .key("region", AttributeValue::S("eu".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(matches!(raw.get("roles"), Some(AttributeValue::Ss(_))));
    assert!(matches!(raw.get("lucky"), Some(AttributeValue::Ns(_))));
    assert!(matches!(raw.get("avatar"), Some(AttributeValue::B(_))));
    assert!(raw.contains_key("mail"));
    assert!(!raw.contains_key("nickname"));

    // Projection: only some attributes (and the key, always read); the entity must still be
    // readable, so a missing required field is a Conversion error naming it.
    let err = User::get(&db, User::key("u1", "eu"))
        .select([User::NAME])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conversion { attribute, .. } if attribute == "status"),
        "{err:?}"
    );
    let note = Note {
        id: "n1".into(),
        body: "hello".into(),
        size: Some(1.5),
    };
    let db2 = support::setup::<Note>().await;
    note.put(&db2).await.unwrap();
    let partial = Note::get(&db2, Note::key("n1"))
        .select([Note::ID, Note::BODY])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(partial, Note { size: None, ..note });
}

#[tokio::test]
async fn put_conditions_and_return_old() {
    let db = support::setup::<Note>().await;
    let first = Note {
        id: "n1".into(),
        body: "one".into(),
        size: None,
    };
    first.put(&db).if_not_exists().await.unwrap();
    let err = first.put(&db).if_not_exists().await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::ConditionFailed {
                operation: dynamite::Operation::PutItem,
                current: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), Some("ConditionalCheckFailedException"));

    let second = Note {
        body: "two".into(),
        ..first.clone()
    };
    let old = second.put(&db).return_old().await.unwrap();
    assert_eq!(old, Some(first));
    let err = second
        .put(&db)
        .condition(Note::BODY.eq("one"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed { .. }));
    second
        .put(&db)
        .condition(Note::BODY.eq("two"))
        .await
        .unwrap();
    let fresh = Note {
        id: "n2".into(),
        body: "x".into(),
        size: None,
    };
    assert_eq!(fresh.put(&db).return_old().await.unwrap(), None);
}

#[tokio::test]
async fn update_actions_conditions_and_return_values() {
    let db = support::setup::<User>().await;
    ada().put(&db).await.unwrap();
    let key = || User::key("u1", "eu");

    let after = User::update(&db, key())
        .set(User::NAME, "Ada Lovelace")
        .set(User::NICKNAME, "Countess")
        .set_if_not_exists(User::EXPIRES_AT, 1)
        .add(User::LOGINS, 2)
        .add(User::ROLES, HashSet::from(["author".to_string()]))
        .append(User::TAGS, vec!["engines".into()])
        .delete_elements(User::LUCKY, BTreeSet::from([3]))
        .return_new()
        .await
        .unwrap();
    assert_eq!(after.name, "Ada Lovelace");
    assert_eq!(after.nickname.as_deref(), Some("Countess"));
    assert_eq!(
        after.expires_at,
        Some(4_000_000_000),
        "set_if_not_exists keeps the existing value"
    );
    assert_eq!(after.logins, 2);
    assert_eq!(
        after.roles,
        HashSet::from(["admin".to_string(), "author".to_string()])
    );
    assert_eq!(after.tags, vec!["math".to_string(), "engines".to_string()]);
    assert_eq!(after.lucky, BTreeSet::from([7]));
    assert_eq!(after.version, 2, "every update bumps the version");

    let before = User::update(&db, key())
        .remove(User::NICKNAME)
        .prepend(User::TAGS, vec!["first".into()])
        .set(User::EMAIL, None::<String>)
        .return_old()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.nickname.as_deref(), Some("Countess"));
    let now = User::get(&db, key()).await.unwrap().unwrap();
    assert_eq!(now.nickname, None);
    assert_eq!(
        now.email, None,
        "setting an Option to None removes the attribute"
    );
    assert_eq!(now.tags[0], "first");

    let err = User::update(&db, key())
        .set(User::NAME, "x")
        .condition(User::STATUS.eq("banned"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConditionFailed {
                operation: dynamite::Operation::UpdateItem,
                ..
            }
        ),
        "{err:?}"
    );
    User::update(&db, key())
        .increment(User::SCORE, 3)
        .condition(User::STATUS.eq("active").and(User::LOGINS.ge(2)))
        .await
        .unwrap();
    assert_eq!(User::get(&db, key()).await.unwrap().unwrap().score, 10);
}

#[tokio::test]
async fn update_rejects_bad_input_before_sending() {
    let db = support::unreachable_client().await;
    let key = || User::key("u1", "eu");
    let err = User::update(&db, key())
        .set(User::ID, "other")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "id"),
        "{err:?}"
    );
    let err = User::update(&db, key())
        .set(User::VERSION, 9)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "version"),
        "{err:?}"
    );
    let err = User::update(&db, key()).await.unwrap_err();
    assert!(matches!(&err, Error::Validation { .. }), "{err:?}");
    let err = User::update(&db, key())
        .set(User::STATUS, "")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "status"),
        "{err:?}"
    );
    let err = User::update(&db, key())
        .set(User::NAME, "a")
        .set(User::NAME, "b")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "name"),
        "{err:?}"
    );
    let err = Note::update(&db, Note::key("n"))
        .set(Note::SIZE, f64::NAN)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "size"),
        "{err:?}"
    );
    let err = Note::delete(&db, Note::key("n"))
        .expect_version(1)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::Validation { .. }), "{err:?}");
}

#[tokio::test]
async fn delete_with_condition_and_return_old() {
    let db = support::setup::<Note>().await;
    let note = Note {
        id: "n1".into(),
        body: "keep".into(),
        size: Some(2.0),
    };
    note.put(&db).await.unwrap();
    let err = Note::delete(&db, Note::key("n1"))
        .condition(Note::BODY.eq("other"))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::ConditionFailed {
            operation: dynamite::Operation::DeleteItem,
            ..
        }
    ));
    let old = Note::delete(&db, Note::key("n1"))
        .return_old()
        .await
        .unwrap();
    assert_eq!(old, Some(note));
    assert_eq!(
        Note::delete(&db, Note::key("n1"))
            .return_old()
            .await
            .unwrap(),
        None
    );
    Note::delete(&db, Note::key("n1")).await.unwrap();
}

#[tokio::test]
async fn optimistic_locking() {
    let db = support::setup::<User>().await;
    let mut user = ada();
    user.put(&db).await.unwrap();

    // A second "new" copy (version 0) loses: the item exists.
    let err = user.put(&db).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: None,
                actual: Some(1),
                ..
            }
        ),
        "{err:?}"
    );

    // Read-modify-write at the stored version succeeds and bumps it.
    let mut stored = User::get(&db, user.primary_key()).await.unwrap().unwrap();
    assert_eq!(stored.version, 1);
    stored.name = "Ada L".into();
    stored.put(&db).await.unwrap();
    // The same stale copy again: conflict naming both versions.
    let err = stored.put(&db).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: Some(1),
                actual: Some(2),
                ..
            }
        ),
        "{err:?}"
    );

    // Updates: expect_version checks, every update bumps.
    let err = User::update(&db, user.primary_key())
        .add(User::LOGINS, 1)
        .expect_version(1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: Some(1),
                actual: Some(2),
                ..
            }
        ),
        "{err:?}"
    );
    let after = User::update(&db, user.primary_key())
        .add(User::LOGINS, 1)
        .expect_version(2)
        .return_new()
        .await
        .unwrap();
    assert_eq!(after.version, 3);

    // The caller's condition failing at the right version is a condition failure, not a conflict.
    let err = User::update(&db, user.primary_key())
        .add(User::LOGINS, 1)
        .condition(User::STATUS.eq("banned"))
        .expect_version(3)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed { .. }), "{err:?}");

    // Delete with a stale version conflicts; with the right one it goes.
    let err = User::delete(&db, user.primary_key())
        .expect_version(2)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: Some(2),
                actual: Some(3),
                ..
            }
        ),
        "{err:?}"
    );
    User::delete(&db, user.primary_key())
        .expect_version(3)
        .await
        .unwrap();

    // A copy at version 3 of a deleted item conflicts (nothing stored).
    user.version = 3;
    let err = user.put(&db).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::VersionConflict {
                expected: Some(3),
                actual: None,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn validation_errors_are_raised_before_any_request() {
    let db = support::unreachable_client().await;

    let big = Note {
        id: "n1".into(),
        body: "x".repeat(400 * 1024),
        size: None,
    };
    let err = big.put(&db).await.unwrap_err();
    match &err {
        Error::Validation {
            entity,
            attribute,
            reason,
        } => {
            assert_eq!(entity, "Note");
            assert_eq!(attribute, "(item)");
            assert!(reason.contains("400 KB"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let empty_key = Note {
        id: String::new(),
        body: "b".into(),
        size: None,
    };
    let err = empty_key.put(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { entity, attribute, .. } if entity == "Note" && attribute == "id"),
        "{err:?}"
    );
    let err = Note::get(&db, Note::key("")).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "id"),
        "{err:?}"
    );
    let err = Note::delete(&db, Note::key("")).await.unwrap_err();
    assert!(matches!(&err, Error::Validation { .. }), "{err:?}");

    let out_of_range = Note {
        id: "n".into(),
        body: "b".into(),
        size: Some(1e200),
    };
    let err = out_of_range.put(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, reason, .. } if attribute == "size" && reason.contains("range")),
        "{err:?}"
    );

    let mut empty_index_key = ada();
    empty_index_key.status = String::new();
    let err = empty_index_key.put(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, reason, .. } if attribute == "status" && reason.contains("StatusIndex")),
        "{err:?}"
    );

    let missing_sort = dynamite::Key::<User>::from_values(AttributeValue::S("u1".into()), None);
    let err = User::get(&db, missing_sort).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, reason, .. } if attribute == "region" && reason.contains("missing")),
        "{err:?}"
    );

    let wrong_type = dynamite::Key::<Note>::from_values(AttributeValue::N("1".into()), None);
    let err = Note::get(&db, wrong_type).await.unwrap_err();
    assert!(matches!(&err, Error::Validation { .. }), "{err:?}");

    let empty_binary = Blob { id: Binary(vec![]) };
    let err = empty_binary.put(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, reason, .. } if attribute == "id" && reason.contains("binary")),
        "{err:?}"
    );

    // A binary partition key holds up to 2048 bytes, as a string one does.
    let long_binary = Blob {
        id: Binary(vec![7; 2049]),
    };
    let err = long_binary.put(&db).await.unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, reason, .. } if attribute == "id" && reason.contains("2049 bytes") && reason.contains("2048")),
        "{err:?}"
    );
    let err = Blob::get(&db, Blob::key(Binary(vec![7; 2049])))
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "blobs")]
struct Blob {
    #[dynamite(partition_key)]
    id: Binary,
}

#[tokio::test]
async fn service_errors_keep_operation_table_and_source() {
    let db = support::client().await; // no table created
    let err = Note::get(&db, Note::key("x")).await.unwrap_err();
    match &err {
        Error::Sdk {
            operation,
            table,
            code,
            ..
        } => {
            assert_eq!(*operation, dynamite::Operation::GetItem);
            assert_eq!(table, &db.table_name("notes"));
            assert_eq!(code.as_deref(), Some("ResourceNotFoundException"));
        }
        other => panic!("{other:?}"),
    }
    assert!(std::error::Error::source(&err).is_some());
    assert!(err.is_resource_not_found());
    assert_eq!(err.kind(), Some(dynamite::ErrorKind::Client));
    // Display names the operation, the table and DynamoDB's own code and message (which the
    // SDK error, the source, does not show: its Display is only "service error").
    let shown = err.to_string();
    assert!(
        shown.contains("GetItem") && shown.contains("notes"),
        "{shown}"
    );
    assert!(shown.contains("ResourceNotFoundException: "), "{shown}");
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(!source.contains("ResourceNotFound"), "{source}");
}

#[tokio::test]
async fn binary_and_numeric_keys() {
    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "events")]
    struct Event {
        #[dynamite(partition_key)]
        stream: Binary,
        #[dynamite(sort_key)]
        seq: u64,
        payload: String,
    }
    let db = support::setup::<Event>().await;
    let e = Event {
        stream: Binary(vec![0xde, 0xad]),
        seq: 42,
        payload: "p".into(),
    };
    e.put(&db).await.unwrap();
    let got = Event::get(&db, Event::key(Binary(vec![0xde, 0xad]), 42))
        .await
        .unwrap();
    assert_eq!(got, Some(e));
}

#[tokio::test]
async fn oversized_updates_and_empty_key_conditions_are_refused_before_sending() {
    let db = support::unreachable_client().await;
    let big = "x".repeat(410 * 1024);
    let err = Note::update(&db, Note::key("n"))
        .set(Note::BODY, big.as_str())
        .await
        .unwrap_err();
    assert!(err.is_validation(), "{err:?}");
    assert!(err.to_string().contains("400 KB"), "{err}");

    let err = Note::find(&db)
        .filter(Note::ID.eq(""))
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "id"),
        "{err:?}"
    );

    let err = Note::find(&db)
        .filter(Note::ID.eq("n"))
        .limit(0)
        .page(None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Validation { attribute, .. } if attribute == "limit"),
        "{err:?}"
    );
}

#[tokio::test]
async fn selections_always_read_the_key() {
    #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
    #[dynamite(table = "notes")]
    struct NoteBody {
        #[dynamite(partition_key)]
        id: String,
        #[serde(default)]
        body: String,
        size: Option<f64>,
    }
    let db = support::setup::<NoteBody>().await;
    let note = NoteBody {
        id: "n1".into(),
        body: "hello".into(),
        size: Some(1.5),
    };
    note.put(&db).await.unwrap();

    // get().select() reads the key with the selection, so the entity decodes.
    let got = NoteBody::get(&db, NoteBody::key("n1"))
        .select([NoteBody::BODY])
        .await
        .unwrap();
    assert_eq!(
        got,
        Some(NoteBody {
            size: None,
            ..note.clone()
        })
    );

    // A selection naming the key itself names it once (DynamoDB refuses a path twice).
    let got = NoteBody::get(&db, NoteBody::key("n1"))
        .select([NoteBody::ID, NoteBody::BODY])
        .await
        .unwrap();
    assert_eq!(got.map(|n| n.body), Some("hello".to_owned()));
    let out = NoteBody::batch_get(&db, [NoteBody::key("n1")])
        .select([NoteBody::ID, NoteBody::BODY])
        .await
        .unwrap();
    assert_eq!(out.items.len(), 1);
    assert!(out.missing.is_empty());
}

#[tokio::test]
async fn update_changes_existing_items_only_and_upsert_creates() {
    let db = support::setup::<Note>().await;
    let err = Note::update(&db, Note::key("n1"))
        .set(Note::BODY, "hello")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    assert!(err.to_string().contains("n1"), "{err}");
    // Nothing was created: no partial item for later reads to trip on.
    assert_eq!(
        Note::get(&db, Note::key("n1")).consistent().await.unwrap(),
        None
    );

    Note::upsert(&db, Note::key("n1"))
        .set(Note::BODY, "hello")
        .await
        .unwrap();
    Note::update(&db, Note::key("n1"))
        .set(Note::SIZE, Some(2.0))
        .await
        .unwrap();
    let got = Note::get(&db, Note::key("n1")).consistent().await.unwrap();
    assert_eq!(
        got,
        Some(Note {
            id: "n1".into(),
            body: "hello".into(),
            size: Some(2.0)
        })
    );

    // A condition that fails on an existing item is still ConditionFailed, with the item.
    let err = Note::update(&db, Note::key("n1"))
        .set(Note::BODY, "bye")
        .condition(Note::BODY.eq("other"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::ConditionFailed {
                current: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
}
