//! A struct using every attribute `#[derive(Entity)]` supports compiles and records the
//! expected schema. (A plain test rather than a trybuild "pass" case: trybuild then only has to
//! `cargo check` its copy of the dependencies instead of building them all.)

use dynamite::aws_sdk_dynamodb::types::AttributeValue;
use dynamite::{Binary, Entity, IndexKind, KeySchema, Projection, ScalarType};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
#[dynamite(global_index(name = "EmailIndex", projection = keys_only))]
#[dynamite(global_index(name = "StatusIndex", projection = include(display_name, login_count)))]
#[dynamite(local_index(name = "ByScore"))]
#[serde(rename_all = "camelCase")]
struct User {
    #[dynamite(partition_key)]
    tenant_id: String,
    /// A numeric sort key.
    #[dynamite(sort_key)]
    created_at: i64,
    /// Sparse index key: items without an email are not in `EmailIndex`.
    #[dynamite(index_key(index = "EmailIndex", partition))]
    email: Option<String>,
    #[dynamite(index_key(index = "StatusIndex", partition))]
    status: String,
    #[dynamite(index_key(index = "StatusIndex", sort))]
    #[serde(rename = "updated")]
    updated_at: u64,
    #[dynamite(index_key(index = "ByScore", sort))]
    score: u32,
    #[serde(alias = "name")]
    display_name: String,
    #[serde(default)]
    login_count: u64,
    #[serde(skip)]
    session_cache: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    tags: Vec<String>,
    #[dynamite(ttl)]
    expires_at: Option<i64>,
    #[dynamite(version)]
    version: u64,
}

/// A binary partition key.
#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "blobs")]
struct Blob {
    #[dynamite(partition_key)]
    digest: Binary,
    size: u64,
}

#[test]
fn full_entity_compiles_and_records_its_schema() {
    let schema = User::schema();
    assert_eq!(schema.entity, "User");
    assert_eq!(schema.table, "users");
    assert_eq!(
        schema.partition_key,
        KeySchema {
            name: "tenantId",
            scalar: ScalarType::String
        }
    );
    assert_eq!(
        schema.sort_key,
        Some(KeySchema {
            name: "createdAt",
            scalar: ScalarType::Number
        })
    );
    assert_eq!(schema.ttl, Some("expiresAt"));
    assert_eq!(schema.version, Some("version"));
    // `rename_all` applies, `rename` wins over it, skipped fields are not attributes.
    assert_eq!(
        schema.attributes,
        [
            "tenantId",
            "createdAt",
            "email",
            "status",
            "updated",
            "score",
            "displayName",
            "loginCount",
            "tags",
            "expiresAt",
            "version",
        ]
    );

    assert_eq!(schema.indexes.len(), 3);
    let email = schema.index("EmailIndex").expect("EmailIndex");
    assert_eq!(email.kind, IndexKind::Global);
    assert_eq!(
        email.partition_key,
        KeySchema {
            name: "email",
            scalar: ScalarType::String
        }
    );
    assert_eq!(email.sort_key, None);
    assert_eq!(email.projection, Projection::KeysOnly);

    let status = schema.index("StatusIndex").expect("StatusIndex");
    assert_eq!(status.kind, IndexKind::Global);
    assert_eq!(status.partition_key.name, "status");
    assert_eq!(
        status.sort_key,
        Some(KeySchema {
            name: "updated",
            scalar: ScalarType::Number
        })
    );
    assert_eq!(
        status.projection,
        Projection::Include(&["displayName", "loginCount"])
    );

    let by_score = schema.index("ByScore").expect("ByScore");
    assert_eq!(by_score.kind, IndexKind::Local);
    assert_eq!(by_score.partition_key, schema.partition_key);
    assert_eq!(
        by_score.sort_key,
        Some(KeySchema {
            name: "score",
            scalar: ScalarType::Number
        })
    );
    assert_eq!(by_score.projection, Projection::All);

    // Typed key constructor: `impl Into<String>` for String keys, the field type otherwise.
    let key = User::key("t1", 42);
    assert_eq!(key.partition(), &AttributeValue::S("t1".into()));
    assert_eq!(key.sort(), Some(&AttributeValue::N("42".into())));

    // Attribute handles carry the attribute name after renaming.
    assert_eq!(User::TENANT_ID.name(), "tenantId");
    assert_eq!(User::UPDATED_AT.name(), "updated");
    assert_eq!(User::DISPLAY_NAME.name(), "displayName");
    assert_eq!(User::TAGS.name(), "tags");
    // Index handles.
    assert_eq!(User::EMAIL_INDEX.name(), "EmailIndex");
    assert_eq!(User::STATUS_INDEX.name(), "StatusIndex");
    assert_eq!(User::BY_SCORE.name(), "ByScore");

    // Item conversion follows the same names: `skip` and an empty `skip_serializing_if` field
    // are not written, `None` is not written.
    let user = User {
        tenant_id: "t1".into(),
        created_at: 42,
        email: None,
        status: "active".into(),
        updated_at: 7,
        score: 3,
        display_name: "Ada".into(),
        login_count: 2,
        session_cache: Some("not stored".into()),
        tags: Vec::new(),
        expires_at: None,
        version: 1,
    };
    let item = user.to_item().expect("to_item");
    let mut written: Vec<&str> = item.keys().map(String::as_str).collect();
    written.sort_unstable();
    assert_eq!(
        written,
        [
            "createdAt",
            "displayName",
            "loginCount",
            "score",
            "status",
            "tenantId",
            "updated",
            "version"
        ]
    );
    assert_eq!(user.primary_key(), User::key("t1", 42));

    // On read: `alias` is accepted, `default` and `skip` fill in missing attributes.
    let mut item = item;
    let name = item.remove("displayName").expect("displayName");
    item.insert("name".into(), name);
    item.remove("loginCount");
    let read = User::from_item(item).expect("from_item");
    assert_eq!(read.display_name, "Ada");
    assert_eq!(read.login_count, 0);
    assert_eq!(read.session_cache, None);
    assert!(read.tags.is_empty());
    assert_eq!(read.version(), Some(1));

    let blobs = Blob::schema();
    assert_eq!(
        blobs.partition_key,
        KeySchema {
            name: "digest",
            scalar: ScalarType::Binary
        }
    );
    assert_eq!(blobs.sort_key, None);
    let key = Blob::key(Binary(vec![1, 2, 3]));
    assert!(matches!(key.partition(), AttributeValue::B(b) if b.as_ref() == [1, 2, 3]));
    assert_eq!(key.sort(), None);
    assert_eq!(Blob::SIZE.name(), "size");
}
