//! Schema drift: how an existing table differs from what its entity declares (key schema,
//! key attribute types, indexes, their keys and projections). Pure: compares the metadata with
//! a `DescribeTable` answer.

use std::fmt;

use aws_sdk_dynamodb::types::{
    KeySchemaElement, KeyType, Projection as SdkProjection, ProjectionType, TableDescription,
};

use super::scalar;
use crate::{IndexKind, IndexSchema, KeySchema, Projection, TableSchema};

/// One way a table differs from its entity, from [`Error::SchemaDrift`](crate::Error::SchemaDrift).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaDrift {
    /// The table's primary key differs (attribute names or hash/range roles).
    TableKey {
        /// The entity's, as `pk` or `pk, sk`.
        declared: String,
        /// The table's.
        actual: String,
    },
    /// A key attribute is stored with another type than the entity's.
    KeyType {
        /// The attribute.
        attribute: String,
        /// The entity's type (`S`, `N`, `B`).
        declared: &'static str,
        /// The table's.
        actual: String,
    },
    /// An index the entity declares is not on the table. A global index can be added
    /// ([`CreateTable::migrate`](crate::table::CreateTable::migrate)); a local one only when the
    /// table is created.
    MissingIndex {
        /// The index.
        index: String,
        /// Global or local.
        kind: IndexKind,
    },
    /// An index is global on one side and local on the other.
    IndexKind {
        /// The index.
        index: String,
        /// The entity's.
        declared: IndexKind,
    },
    /// An index's key differs.
    IndexKey {
        /// The index.
        index: String,
        /// The entity's, as `pk` or `pk, sk`.
        declared: String,
        /// The table's.
        actual: String,
    },
    /// An index holds other attributes than the entity declares.
    IndexProjection {
        /// The index.
        index: String,
        /// The entity's (`ALL`, `KEYS_ONLY`, `INCLUDE(a, b)`).
        declared: String,
        /// The table's.
        actual: String,
    },
}

impl SchemaDrift {
    /// Whether [`CreateTable::migrate`](crate::table::CreateTable::migrate) can fix it: a
    /// missing global index.
    pub fn is_migratable(&self) -> bool {
        matches!(
            self,
            SchemaDrift::MissingIndex {
                kind: IndexKind::Global,
                ..
            }
        )
    }
}

impl fmt::Display for SchemaDrift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaDrift::TableKey { declared, actual } => {
                write!(
                    f,
                    "primary key is ({actual}), the entity declares ({declared})"
                )
            }
            SchemaDrift::KeyType {
                attribute,
                declared,
                actual,
            } => write!(
                f,
                "key attribute `{attribute}` has type {actual}, the entity declares {declared}"
            ),
            SchemaDrift::MissingIndex { index, kind } => {
                write!(f, "{} `{index}` is missing", kind_name(*kind))
            }
            SchemaDrift::IndexKind { index, declared } => write!(
                f,
                "index `{index}` is not a {} as declared",
                kind_name(*declared)
            ),
            SchemaDrift::IndexKey {
                index,
                declared,
                actual,
            } => write!(
                f,
                "index `{index}` is keyed by ({actual}), the entity declares ({declared})"
            ),
            SchemaDrift::IndexProjection {
                index,
                declared,
                actual,
            } => write!(
                f,
                "index `{index}` projects {actual}, the entity declares {declared}"
            ),
        }
    }
}

fn kind_name(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Global => "global index",
        IndexKind::Local => "local index",
    }
}

/// `pk` or `pk, sk`.
fn declared_keys(pk: &KeySchema, sk: Option<&KeySchema>) -> String {
    match sk {
        Some(sk) => format!("{}, {}", pk.name, sk.name),
        None => pk.name.to_owned(),
    }
}

/// The same form for a key schema from DynamoDB: the hash key, then the range key.
fn actual_keys(elements: &[KeySchemaElement]) -> String {
    let of = |t: KeyType| {
        elements
            .iter()
            .filter(move |e| e.key_type() == &t)
            .map(|e| e.attribute_name())
    };
    of(KeyType::Hash)
        .chain(of(KeyType::Range))
        .collect::<Vec<_>>()
        .join(", ")
}

fn declared_projection(p: &Projection) -> String {
    match p {
        Projection::All => "ALL".to_owned(),
        Projection::KeysOnly => "KEYS_ONLY".to_owned(),
        Projection::Include(attrs) => {
            let mut attrs = attrs.to_vec();
            attrs.sort_unstable();
            format!("INCLUDE({})", attrs.join(", "))
        }
    }
}

fn actual_projection(p: Option<&SdkProjection>) -> String {
    match p.and_then(SdkProjection::projection_type) {
        Some(ProjectionType::All) | None => "ALL".to_owned(),
        Some(ProjectionType::KeysOnly) => "KEYS_ONLY".to_owned(),
        Some(other) => {
            let mut attrs: Vec<&str> = p
                .map(|p| p.non_key_attributes().iter().map(String::as_str).collect())
                .unwrap_or_default();
            attrs.sort_unstable();
            match other {
                ProjectionType::Include => format!("INCLUDE({})", attrs.join(", ")),
                other => other.as_str().to_owned(),
            }
        }
    }
}

/// Every difference between `schema` and the table described by `table`, in a stable order:
/// the table's key, key types, then each declared index. Indexes on the table that the entity
/// does not declare are not drift (other entities sharing the table may use them).
pub(crate) fn drift(schema: &TableSchema, table: &TableDescription) -> Vec<SchemaDrift> {
    let mut found = Vec::new();
    let declared = declared_keys(&schema.partition_key, schema.sort_key.as_ref());
    let actual = actual_keys(table.key_schema());
    if declared != actual {
        found.push(SchemaDrift::TableKey { declared, actual });
    }
    for key in schema.all_key_attributes() {
        let stored = table
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == key.name);
        if let Some(stored) = stored {
            let actual = stored.attribute_type();
            if actual != &scalar(key.scalar) {
                found.push(SchemaDrift::KeyType {
                    attribute: key.name.to_owned(),
                    declared: key.scalar.code(),
                    actual: actual.as_str().to_owned(),
                });
            }
        }
    }
    for index in schema.indexes {
        index_drift(index, table, &mut found);
    }
    found
}

/// How the table's copy of `index` differs from it.
fn index_drift(index: &IndexSchema, table: &TableDescription, found: &mut Vec<SchemaDrift>) {
    let global = table
        .global_secondary_indexes()
        .iter()
        .find(|g| g.index_name() == Some(index.name))
        .map(|g| (IndexKind::Global, g.key_schema(), g.projection()));
    let local = table
        .local_secondary_indexes()
        .iter()
        .find(|l| l.index_name() == Some(index.name))
        .map(|l| (IndexKind::Local, l.key_schema(), l.projection()));
    let Some((kind, keys, projection)) = global.or(local) else {
        found.push(SchemaDrift::MissingIndex {
            index: index.name.to_owned(),
            kind: index.kind,
        });
        return;
    };
    if kind != index.kind {
        found.push(SchemaDrift::IndexKind {
            index: index.name.to_owned(),
            declared: index.kind,
        });
    }
    let declared = declared_keys(&index.partition_key, index.sort_key.as_ref());
    let actual = actual_keys(keys);
    if declared != actual {
        found.push(SchemaDrift::IndexKey {
            index: index.name.to_owned(),
            declared,
            actual,
        });
    }
    let declared = declared_projection(&index.projection);
    let actual = actual_projection(projection);
    if declared != actual {
        found.push(SchemaDrift::IndexProjection {
            index: index.name.to_owned(),
            declared,
            actual,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScalarType;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, GlobalSecondaryIndexDescription, LocalSecondaryIndexDescription,
        ScalarAttributeType,
    };

    static INDEXES: [IndexSchema; 2] = [
        IndexSchema {
            name: "ByStatus",
            kind: IndexKind::Global,
            partition_key: KeySchema {
                name: "status",
                scalar: ScalarType::String,
            },
            sort_key: Some(KeySchema {
                name: "at",
                scalar: ScalarType::Number,
            }),
            projection: Projection::Include(&["total", "name"]),
        },
        IndexSchema {
            name: "ByTotal",
            kind: IndexKind::Local,
            partition_key: KeySchema {
                name: "pk",
                scalar: ScalarType::String,
            },
            sort_key: Some(KeySchema {
                name: "total",
                scalar: ScalarType::Number,
            }),
            projection: Projection::KeysOnly,
        },
    ];

    static SCHEMA: TableSchema = TableSchema {
        indexes: &INDEXES,
        ..TableSchema::for_tests(
            Some(KeySchema {
                name: "sk",
                scalar: ScalarType::Number,
            }),
            1,
        )
    };

    fn key(name: &str, t: KeyType) -> KeySchemaElement {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(t)
            .build()
            .unwrap()
    }

    fn def(name: &str, t: ScalarAttributeType) -> AttributeDefinition {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(t)
            .build()
            .unwrap()
    }

    fn projection(t: ProjectionType, attrs: &[&str]) -> SdkProjection {
        SdkProjection::builder()
            .projection_type(t)
            .set_non_key_attributes(
                (!attrs.is_empty()).then(|| attrs.iter().map(|a| a.to_string()).collect()),
            )
            .build()
    }

    fn matching() -> aws_sdk_dynamodb::types::builders::TableDescriptionBuilder {
        TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(def("pk", ScalarAttributeType::S))
            .attribute_definitions(def("sk", ScalarAttributeType::N))
            .attribute_definitions(def("status", ScalarAttributeType::S))
            .attribute_definitions(def("at", ScalarAttributeType::N))
            .attribute_definitions(def("total", ScalarAttributeType::N))
            .local_secondary_indexes(
                LocalSecondaryIndexDescription::builder()
                    .index_name("ByTotal")
                    .key_schema(key("pk", KeyType::Hash))
                    .key_schema(key("total", KeyType::Range))
                    .projection(projection(ProjectionType::KeysOnly, &[]))
                    .build(),
            )
    }

    fn by_status(keys: [(&str, KeyType); 2], p: SdkProjection) -> GlobalSecondaryIndexDescription {
        GlobalSecondaryIndexDescription::builder()
            .index_name("ByStatus")
            .key_schema(key(keys[0].0, keys[0].1.clone()))
            .key_schema(key(keys[1].0, keys[1].1.clone()))
            .projection(p)
            .build()
    }

    #[test]
    fn a_matching_table_has_no_drift_whatever_the_order_of_included_attributes() {
        let table = matching()
            .global_secondary_indexes(by_status(
                [("status", KeyType::Hash), ("at", KeyType::Range)],
                projection(ProjectionType::Include, &["name", "total"]),
            ))
            .build();
        assert_eq!(drift(&SCHEMA, &table), vec![]);
    }

    #[test]
    fn a_missing_global_index_is_the_only_migratable_drift() {
        let drifts = drift(&SCHEMA, &matching().build());
        assert_eq!(
            drifts,
            vec![SchemaDrift::MissingIndex {
                index: "ByStatus".into(),
                kind: IndexKind::Global
            }]
        );
        assert!(drifts[0].is_migratable());
        assert_eq!(drifts[0].to_string(), "global index `ByStatus` is missing");
    }

    #[test]
    fn every_difference_is_named() {
        let table = TableDescription::builder()
            .key_schema(key("pk", KeyType::Hash))
            .attribute_definitions(def("pk", ScalarAttributeType::N))
            .global_secondary_indexes(by_status(
                [("status", KeyType::Hash), ("created", KeyType::Range)],
                projection(ProjectionType::All, &[]),
            ))
            .build();
        let drifts = drift(&SCHEMA, &table);
        let text: Vec<String> = drifts.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "primary key is (pk), the entity declares (pk, sk)",
                "key attribute `pk` has type N, the entity declares S",
                "index `ByStatus` is keyed by (status, created), the entity declares (status, at)",
                "index `ByStatus` projects ALL, the entity declares INCLUDE(name, total)",
                "local index `ByTotal` is missing",
            ]
        );
        assert!(drifts.iter().all(|d| !d.is_migratable()));
    }
}
