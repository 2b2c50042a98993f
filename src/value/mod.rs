//! Conversion between Rust values and DynamoDB attribute values.
//!
//! `#[derive(Entity)]` converts each field with [`ToAttributeValue`] / [`FromAttributeValue`]
//! when the field's type implements them (strings, numbers, bool, bytes, `Option`, `Vec`, maps,
//! sets), with no intermediate representation; any other `serde` type (nested structs, enums)
//! goes through `serde_dynamo`. Sets (`HashSet`, `BTreeSet`) of strings, numbers or [`Binary`]
//! are stored as DynamoDB sets (`SS`, `NS`, `BS`).
//!
//! At the top level of an item, `None` and empty sets are written as absent attributes (DynamoDB
//! has no empty set, and an absent attribute keeps sparse indexes sparse); they read back as
//! `None` and an empty set.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

mod number;
mod set;

pub(crate) use self::number::check_number_text;
pub use self::number::NumberValue;
pub use self::set::SetElement;

/// Why one value could not be converted; the derive adds the entity and attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertError(pub(crate) String);

impl ConvertError {
    /// A conversion error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        ConvertError(message.into())
    }

    fn unexpected(expected: &str, found: &AttributeValue) -> Self {
        ConvertError(format!("expected {expected}, found {}", type_name(found)))
    }
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The DynamoDB type descriptor of a value, for messages.
pub(crate) fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S (string)",
        AttributeValue::N(_) => "N (number)",
        AttributeValue::B(_) => "B (binary)",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::L(_) => "L (list)",
        AttributeValue::M(_) => "M (map)",
        AttributeValue::Ss(_) => "SS (string set)",
        AttributeValue::Ns(_) => "NS (number set)",
        AttributeValue::Bs(_) => "BS (binary set)",
        _ => "an unknown type",
    }
}

/// A key (or small item) for messages: `{id: "u1", n: 5}`, attributes in name order.
pub(crate) fn display_item(item: &crate::Item) -> String {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let parts: Vec<String> = names
        .into_iter()
        .map(|name| {
            let value = match &item[name] {
                AttributeValue::S(s) => format!("{s:?}"),
                AttributeValue::N(n) => n.clone(),
                AttributeValue::B(b) => format!("<{} bytes>", b.as_ref().len()),
                other => type_name(other).to_owned(),
            };
            format!("{name}: {value}")
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Converts a Rust value into a DynamoDB attribute value.
pub trait ToAttributeValue {
    /// The attribute value.
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError>;

    /// `true` when, as a top-level attribute, the value is written as no attribute at all
    /// (`None`, an empty set).
    fn is_absent(&self) -> bool {
        false
    }
}

/// Converts a DynamoDB attribute value into a Rust value.
pub trait FromAttributeValue: Sized {
    /// Reads the value.
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError>;

    /// The value of an absent top-level attribute, if the type has one (`None`, an empty set).
    fn from_absent() -> Option<Self> {
        None
    }
}

// ---- strings, bool ---------------------------------------------------------------------------

impl ToAttributeValue for String {
    #[inline]
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::S(self.clone()))
    }
}
impl ToAttributeValue for str {
    #[inline]
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::S(self.to_owned()))
    }
}
impl ToAttributeValue for &str {
    #[inline]
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::S((*self).to_owned()))
    }
}
impl FromAttributeValue for String {
    #[inline]
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        match value {
            AttributeValue::S(s) => Ok(s),
            other => Err(ConvertError::unexpected("S (string)", &other)),
        }
    }
}
impl ToAttributeValue for bool {
    #[inline]
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::Bool(*self))
    }
}
impl FromAttributeValue for bool {
    #[inline]
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        match value {
            AttributeValue::Bool(b) => Ok(b),
            other => Err(ConvertError::unexpected("BOOL", &other)),
        }
    }
}

// ---- binary ----------------------------------------------------------------------------------

/// Bytes stored as DynamoDB binary (`B`), and usable as a key attribute.
///
/// A plain `Vec<u8>` is a list of numbers (as serde writes it); wrap it in `Binary` to store
/// bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Binary(#[serde(with = "serde_bytes_compat")] pub Vec<u8>);

mod serde_bytes_compat {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl From<Vec<u8>> for Binary {
    fn from(v: Vec<u8>) -> Self {
        Binary(v)
    }
}
impl From<&[u8]> for Binary {
    fn from(v: &[u8]) -> Self {
        Binary(v.to_vec())
    }
}
impl AsRef<[u8]> for Binary {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
impl ToAttributeValue for Binary {
    #[inline]
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::B(Blob::new(self.0.clone())))
    }
}
impl FromAttributeValue for Binary {
    #[inline]
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        match value {
            AttributeValue::B(b) => Ok(Binary(b.into_inner())),
            other => Err(ConvertError::unexpected("B (binary)", &other)),
        }
    }
}

// ---- Option, Box, lists, maps ----------------------------------------------------------------

impl<T: ToAttributeValue> ToAttributeValue for Option<T> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        match self {
            Some(v) => v.to_attribute_value(),
            None => Ok(AttributeValue::Null(true)),
        }
    }
    fn is_absent(&self) -> bool {
        match self {
            Some(v) => v.is_absent(),
            None => true,
        }
    }
}
impl<T: FromAttributeValue> FromAttributeValue for Option<T> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        match value {
            AttributeValue::Null(_) => Ok(None),
            other => T::from_attribute_value(other).map(Some),
        }
    }
    fn from_absent() -> Option<Self> {
        Some(None)
    }
}

impl<T: ToAttributeValue + ?Sized> ToAttributeValue for Box<T> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        (**self).to_attribute_value()
    }
    fn is_absent(&self) -> bool {
        (**self).is_absent()
    }
}
impl<T: FromAttributeValue> FromAttributeValue for Box<T> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        T::from_attribute_value(value).map(Box::new)
    }
    fn from_absent() -> Option<Self> {
        T::from_absent().map(Box::new)
    }
}

impl<T: ToAttributeValue> ToAttributeValue for Vec<T> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        // A loop rather than `collect::<Result<_, _>>()`, which loses the exact length and grows.
        let mut list = Vec::with_capacity(self.len());
        for v in self {
            list.push(v.to_attribute_value()?);
        }
        Ok(AttributeValue::L(list))
    }
}
impl<T: FromAttributeValue> FromAttributeValue for Vec<T> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        match value {
            AttributeValue::L(list) => list.into_iter().map(T::from_attribute_value).collect(),
            other => Err(ConvertError::unexpected("L (list)", &other)),
        }
    }
}

impl<V: ToAttributeValue, S> ToAttributeValue for HashMap<String, V, S> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        encode_map(self.len(), self.iter())
    }
}
impl<V: ToAttributeValue> ToAttributeValue for BTreeMap<String, V> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        encode_map(self.len(), self.iter())
    }
}
fn encode_map<'a, V: ToAttributeValue + 'a>(
    len: usize,
    entries: impl Iterator<Item = (&'a String, &'a V)>,
) -> Result<AttributeValue, ConvertError> {
    let mut map = HashMap::with_capacity(len);
    for (k, v) in entries {
        map.insert(k.clone(), v.to_attribute_value()?);
    }
    Ok(AttributeValue::M(map))
}
impl<V: FromAttributeValue, S: BuildHasher + Default> FromAttributeValue for HashMap<String, V, S> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        decode_map(value)
    }
}
impl<V: FromAttributeValue> FromAttributeValue for BTreeMap<String, V> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        decode_map(value)
    }
}
fn decode_map<V: FromAttributeValue, M: FromIterator<(String, V)>>(
    value: AttributeValue,
) -> Result<M, ConvertError> {
    match value {
        AttributeValue::M(map) => map
            .into_iter()
            .map(|(k, v)| Ok((k, V::from_attribute_value(v)?)))
            .collect(),
        other => Err(ConvertError::unexpected("M (map)", &other)),
    }
}

// ---- raw values ------------------------------------------------------------------------------

impl ToAttributeValue for AttributeValue {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        Ok(self.clone())
    }
}
impl FromAttributeValue for AttributeValue {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        Ok(value)
    }
}

// ---- key, TTL and version attributes ---------------------------------------------------------

/// The scalar types a key attribute can have.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ScalarType {
    /// `S`
    String,
    /// `N`
    Number,
    /// `B`
    Binary,
}

impl ScalarType {
    /// The DynamoDB attribute type code.
    pub fn code(self) -> &'static str {
        match self {
            ScalarType::String => "S",
            ScalarType::Number => "N",
            ScalarType::Binary => "B",
        }
    }
}

/// Types that can be a table's key attribute: strings, integers and [`Binary`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a DynamoDB key attribute",
    label = "key attributes must be a string, a number or binary",
    note = "use String, an integer type, or dynamite::Binary"
)]
pub trait KeyAttribute: ToAttributeValue {
    /// The attribute's DynamoDB type.
    const SCALAR: ScalarType;

    /// The key's attribute value.
    fn to_key_value(&self) -> AttributeValue;
}

impl KeyAttribute for String {
    const SCALAR: ScalarType = ScalarType::String;
    fn to_key_value(&self) -> AttributeValue {
        AttributeValue::S(self.clone())
    }
}
impl KeyAttribute for Binary {
    const SCALAR: ScalarType = ScalarType::Binary;
    fn to_key_value(&self) -> AttributeValue {
        AttributeValue::B(Blob::new(self.0.clone()))
    }
}
macro_rules! int_key {
    ($($t:ty),*) => {$(
        impl KeyAttribute for $t {
            const SCALAR: ScalarType = ScalarType::Number;
            fn to_key_value(&self) -> AttributeValue {
                AttributeValue::N(itoa::Buffer::new().format(*self).to_owned())
            }
        }
    )*};
}
int_key!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize);

/// Types that can be a secondary index's key attribute: any [`KeyAttribute`], or an `Option` of
/// one (items without the attribute stay out of the index: a sparse index).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a DynamoDB index key attribute",
    label = "index key attributes must be a string, a number or binary, or an Option of one",
    note = "use String, an integer type, or dynamite::Binary, optionally in an Option"
)]
pub trait IndexKeyAttribute {
    /// The attribute's DynamoDB type.
    const SCALAR: ScalarType;
}
impl<T: KeyAttribute> IndexKeyAttribute for T {
    const SCALAR: ScalarType = T::SCALAR;
}
impl<T: KeyAttribute> IndexKeyAttribute for Option<T> {
    const SCALAR: ScalarType = T::SCALAR;
}

/// Types a TTL attribute can have: an integer of epoch seconds, optionally in an `Option`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a TTL attribute",
    label = "the TTL attribute holds epoch seconds: use i64, u64 or u32 (or an Option of one)"
)]
pub trait TtlAttribute {}
impl TtlAttribute for i64 {}
impl TtlAttribute for u64 {}
impl TtlAttribute for u32 {}
impl TtlAttribute for Option<i64> {}
impl TtlAttribute for Option<u64> {}
impl TtlAttribute for Option<u32> {}

/// Types a `created_at` / `updated_at` attribute can have: epoch milliseconds, as an integer
/// or an `Option` of one. The stamp is set on every write; `created_at` keeps a value the
/// entity already holds (non-zero, or `Some`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a created_at / updated_at attribute",
    label = "timestamps are epoch milliseconds: use i64 or u64 (or an Option of one)"
)]
pub trait TimestampAttribute {}
impl TimestampAttribute for i64 {}
impl TimestampAttribute for u64 {}
impl TimestampAttribute for Option<i64> {}
impl TimestampAttribute for Option<u64> {}

/// Types a version attribute (optimistic locking) can have.
///
/// `0` (or `None`) means "not stored yet": a put of such an entity requires that no item
/// exists; any other value requires the stored version to be equal, and the put writes the
/// next version.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a version attribute",
    label = "the version attribute is a counter: use u64, u32, i64 (or an Option of one)"
)]
pub trait VersionAttribute {
    /// The stored version this value stands for; `None` for a new entity.
    fn current(&self) -> Option<u64>;
}
impl VersionAttribute for u64 {
    fn current(&self) -> Option<u64> {
        (*self != 0).then_some(*self)
    }
}
impl VersionAttribute for u32 {
    fn current(&self) -> Option<u64> {
        (*self != 0).then_some(u64::from(*self))
    }
}
impl VersionAttribute for i64 {
    fn current(&self) -> Option<u64> {
        u64::try_from(*self).ok().filter(|v| *v != 0)
    }
}
impl<T: VersionAttribute> VersionAttribute for Option<T> {
    fn current(&self) -> Option<u64> {
        self.as_ref().and_then(VersionAttribute::current)
    }
}

// ---- item size -------------------------------------------------------------------------------

/// DynamoDB's maximum item size, in bytes.
pub const MAX_ITEM_SIZE: usize = 400 * 1024;

/// The size DynamoDB counts for an item: attribute names plus values, by its documented rules.
pub fn item_size(item: &crate::Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn number_size(n: &str) -> usize {
    let mantissa = n.split(['e', 'E']).next().unwrap_or(n);
    let digits = mantissa.chars().filter(char::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

/// The size DynamoDB counts for one value.
pub(crate) fn value_size(v: &AttributeValue) -> usize {
    match v {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(l) => 3 + l.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        AttributeValue::M(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_text_limits() {
        assert!(check_number_text("12345678901234567890123456789012345678").is_ok());
        assert!(check_number_text("123456789012345678901234567890123456789").is_err());
        assert!(check_number_text("1E+126").is_err());
        assert!(check_number_text("1E-131").is_err());
        assert!(check_number_text("0").is_ok());
        // Leading and trailing zeros (around the point too) are not significant.
        assert!(check_number_text("000.12345678901234567890123456789012345678000").is_ok());
        assert!(check_number_text("-1234567890123456789.0123456789012345678e5").is_ok());
        assert!(check_number_text("1234567890123456789.01234567890123456789").is_err());
        assert!(check_number_text("100000000000000000000000000000000000000000000").is_ok());
        assert!(check_number_text("0.000").is_ok());
    }

    #[test]
    fn number_text_range_is_read_exactly() {
        let ok = |n: &str| assert!(check_number_text(n).is_ok(), "{n} is refused");
        let refused = |n: &str| assert!(check_number_text(n).is_err(), "{n} is accepted");
        // The largest and smallest magnitudes DynamoDB stores, however they are written.
        ok("9.9999999999999999999999999999999999999E+125");
        ok("-99999999999999999999999999999999999999e88");
        ok("1E-130");
        ok("0.0001e-126");
        ok("100e123");
        ok("+5");
        // Past them: below 1E-130 is not zero, and nothing rounds.
        refused("1e-400");
        refused("0.00001e-126");
        refused("1000e123");
        refused("1e99999999999999999999999");
        refused("-1e-99999999999999999999999");
        // Zero with any exponent is zero.
        ok("0e-400");
        ok("0.0e99999999999999999999999");
        // Not numbers.
        for n in ["inf", "-infinity", "NaN", "", ".", "1e", "0x10", "1_000"] {
            refused(n);
        }
    }

    #[test]
    fn floats_out_of_range_are_rejected() {
        assert!(f64::NAN.to_attribute_value().is_err());
        assert!(1e200_f64.to_attribute_value().is_err());
        assert!(1.5_f64.to_attribute_value().is_ok());
    }

    #[test]
    fn u128_over_38_digits_is_rejected() {
        assert!(u128::MAX.to_attribute_value().is_err());
        assert!(10u128.pow(37).to_attribute_value().is_ok());
    }
}
