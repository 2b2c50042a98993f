//! Expressions: conditions, updates and projections. No I/O here.
//!
//! Every attribute name and value goes through an expression placeholder (`#n0`, `:v0`), so no
//! name or value can break or inject into an expression, whatever characters it holds
//! (reserved words, `.`, `#`, `:`, unicode).

pub(crate) mod condition;
pub(crate) mod update;

pub use condition::{AttributeType, Condition, SizeOf};
pub use update::{Addable, Removable, Update};

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::attr::{Path, PathSegment};

/// `ExpressionAttributeValues`.
pub(crate) type Values = HashMap<String, AttributeValue>;

/// Placeholders for one request: names and values shared by all of its expressions.
#[derive(Default, Debug)]
pub(crate) struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Placeholders {
    /// The placeholder of an attribute name (one per distinct name).
    pub(crate) fn name(&mut self, name: &str) -> String {
        if let Some(p) = self.names.get(name) {
            return p.clone();
        }
        let p = format!("#n{}", self.names.len());
        self.names.insert(name.to_owned(), p.clone());
        p
    }

    /// The placeholder of a value (one per use).
    pub(crate) fn value(&mut self, value: AttributeValue) -> String {
        let p = format!(":v{}", self.values.len());
        self.values.insert(p.clone(), value);
        p
    }

    /// A path rendered with name placeholders: `#n0.#n1[2]`.
    pub(crate) fn path(&mut self, path: &Path) -> String {
        let mut out = String::new();
        for seg in path.segments() {
            match seg {
                PathSegment::Name(n) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(&self.name(n));
                }
                PathSegment::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// `ExpressionAttributeNames`, `None` when empty (DynamoDB rejects an empty map).
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| {
            self.names
                .iter()
                .map(|(n, p)| (p.clone(), n.clone()))
                .collect()
        })
    }

    /// `ExpressionAttributeValues`, `None` when empty.
    pub(crate) fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    /// [`names`](Self::names) and [`values`](Self::values), moved out rather than copied.
    pub(crate) fn into_maps(self) -> (Option<HashMap<String, String>>, Option<Values>) {
        let names =
            (!self.names.is_empty()).then(|| self.names.into_iter().map(|(n, p)| (p, n)).collect());
        let values = (!self.values.is_empty()).then_some(self.values);
        (names, values)
    }

    /// The size the values take in an item, as DynamoDB counts it.
    pub(crate) fn values_size(&self) -> usize {
        self.values.values().map(crate::value::value_size).sum()
    }
}

/// Renders a projection expression for `paths`.
pub(crate) fn projection(ph: &mut Placeholders, paths: &[Path]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    Some(
        paths
            .iter()
            .map(|p| ph.path(p))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// `paths` followed by each of the top-level attributes `keys` not among them: a projection that
/// still reads the item's key (named once: DynamoDB rejects a projection naming one twice).
pub(crate) fn with_keys(paths: &[Path], keys: &[&str]) -> Vec<Path> {
    let mut all = paths.to_vec();
    for key in keys {
        let top = Path(vec![crate::PathSegment::Name((*key).to_owned().into())]);
        if !all.contains(&top) {
            all.push(top);
        }
    }
    all
}
