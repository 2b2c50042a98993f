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
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::attr::{Path, PathSegment};

/// `ExpressionAttributeValues`.
pub(crate) type Values = HashMap<String, AttributeValue>;

/// Placeholders for one request: names and values shared by all of its expressions.
///
/// Expressions are rendered straight into one buffer (`push_*`): a placeholder is numbered by
/// its position (`#n3` is the fourth name, `:v0` the first value), so no placeholder text is
/// built until the request's maps are.
#[derive(Default, Debug)]
pub(crate) struct Placeholders {
    /// Attribute names, one per distinct name, in placeholder order.
    names: Vec<String>,
    /// Values, one per use, in placeholder order.
    values: Vec<AttributeValue>,
}

impl Placeholders {
    /// Writes the placeholder of an attribute name (one per distinct name) to `out`.
    pub(crate) fn push_name(&mut self, out: &mut String, name: &str) {
        let index = match self.names.iter().position(|n| n == name) {
            Some(index) => index,
            None => {
                self.names.push(name.to_owned());
                self.names.len() - 1
            }
        };
        push_placeholder(out, '#', 'n', index);
    }

    /// Writes the placeholder of a value (one per use) to `out`.
    pub(crate) fn push_value(&mut self, out: &mut String, value: AttributeValue) {
        self.values.push(value);
        push_placeholder(out, ':', 'v', self.values.len() - 1);
    }

    /// Writes a path with name placeholders to `out`: `#n0.#n1[2]`.
    pub(crate) fn push_path(&mut self, out: &mut String, path: &Path) {
        for (i, seg) in path.segments().iter().enumerate() {
            match seg {
                PathSegment::Name(n) => {
                    if i > 0 {
                        out.push('.');
                    }
                    self.push_name(out, n);
                }
                PathSegment::Index(index) => {
                    let _ = write!(out, "[{index}]");
                }
            }
        }
    }

    /// `ExpressionAttributeNames` as registered so far, `None` when empty (DynamoDB rejects an
    /// empty map).
    pub(crate) fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| placeholder_map('#', 'n', self.names.iter().cloned()))
    }

    /// `ExpressionAttributeValues`, `None` when empty.
    pub(crate) fn values(&self) -> Option<Values> {
        (!self.values.is_empty()).then(|| placeholder_map(':', 'v', self.values.iter().cloned()))
    }

    /// [`names`](Self::names) and [`values`](Self::values), moved out rather than copied.
    pub(crate) fn into_maps(self) -> (Option<HashMap<String, String>>, Option<Values>) {
        let names = (!self.names.is_empty()).then(|| placeholder_map('#', 'n', self.names));
        let values = (!self.values.is_empty()).then(|| placeholder_map(':', 'v', self.values));
        (names, values)
    }

    /// The size the values take in an item, as DynamoDB counts it.
    pub(crate) fn values_size(&self) -> usize {
        self.values.iter().map(crate::value::value_size).sum()
    }
}

/// `#n12`, `:v3`: a placeholder's text, written without a formatter.
fn push_placeholder(out: &mut String, sigil: char, kind: char, index: usize) {
    out.push(sigil);
    out.push(kind);
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = index;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|d| char::from(*d)));
}

fn placeholder(sigil: char, kind: char, index: usize) -> String {
    let mut text = String::with_capacity(6);
    push_placeholder(&mut text, sigil, kind, index);
    text
}

/// `{"#n0": items[0], ...}`: a placeholder map for `items` in placeholder order.
fn placeholder_map<T, I>(sigil: char, kind: char, items: I) -> HashMap<String, T>
where
    I: IntoIterator<Item = T>,
    I::IntoIter: ExactSizeIterator,
{
    let items = items.into_iter();
    let mut map = HashMap::with_capacity(items.len());
    map.extend(
        items
            .enumerate()
            .map(|(i, item)| (placeholder(sigil, kind, i), item)),
    );
    map
}

/// Renders a projection expression for `paths`.
pub(crate) fn projection(ph: &mut Placeholders, paths: &[Path]) -> Option<String> {
    if paths.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(8 * paths.len());
    for (i, path) in paths.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        ph.push_path(&mut out, path);
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_names_once_and_values_per_use() {
        let mut ph = Placeholders::default();
        let mut out = String::new();
        for i in 0..12 {
            ph.push_name(&mut out, &format!("a{}", i % 11));
            out.push(' ');
            ph.push_value(&mut out, AttributeValue::N(i.to_string()));
            out.push(' ');
        }
        assert!(out.starts_with("#n0 :v0 #n1 :v1 "));
        assert!(out.ends_with("#n9 :v9 #n10 :v10 #n0 :v11 "), "{out}");
        let (names, values) = ph.into_maps();
        let (names, values) = (names.unwrap(), values.unwrap());
        assert_eq!(names.len(), 11);
        assert_eq!(names["#n10"], "a10");
        assert_eq!(values.len(), 12);
        assert_eq!(values[":v11"], AttributeValue::N("11".into()));
        assert_eq!(placeholder(':', 'v', 1_234_567), ":v1234567");
    }

    #[test]
    fn nothing_registered_gives_no_maps() {
        let ph = Placeholders::default();
        assert_eq!(ph.names(), None);
        assert_eq!(ph.values(), None);
        assert_eq!(ph.into_maps(), (None, None));
    }
}
