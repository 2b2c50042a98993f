//! Sets: `HashSet` / `BTreeSet` of strings, numbers or [`Binary`] as DynamoDB's `SS`, `NS` and
//! `BS`.

use std::collections::{BTreeSet, HashSet};
use std::hash::{BuildHasher, Hash};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{Binary, ConvertError, FromAttributeValue, ToAttributeValue};

/// Types that can be elements of a DynamoDB set: strings (`SS`), numbers (`NS`), [`Binary`] (`BS`).
pub trait SetElement: Sized {
    #[doc(hidden)]
    fn encode_set<'a>(
        items: impl Iterator<Item = &'a Self>,
    ) -> Result<AttributeValue, ConvertError>
    where
        Self: 'a;
    #[doc(hidden)]
    fn decode_set<C: FromIterator<Self>>(value: AttributeValue) -> Result<C, ConvertError>;
}

impl SetElement for String {
    fn encode_set<'a>(
        items: impl Iterator<Item = &'a Self>,
    ) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::Ss(items.cloned().collect()))
    }
    fn decode_set<C: FromIterator<Self>>(value: AttributeValue) -> Result<C, ConvertError> {
        match value {
            AttributeValue::Ss(v) => Ok(v.into_iter().collect()),
            AttributeValue::Null(_) => Ok(std::iter::empty().collect()),
            other => Err(ConvertError::unexpected("SS (string set)", &other)),
        }
    }
}
impl SetElement for Binary {
    fn encode_set<'a>(
        items: impl Iterator<Item = &'a Self>,
    ) -> Result<AttributeValue, ConvertError> {
        Ok(AttributeValue::Bs(
            items.map(|b| Blob::new(b.0.clone())).collect(),
        ))
    }
    fn decode_set<C: FromIterator<Self>>(value: AttributeValue) -> Result<C, ConvertError> {
        match value {
            AttributeValue::Bs(v) => Ok(v.into_iter().map(|b| Binary(b.into_inner())).collect()),
            AttributeValue::Null(_) => Ok(std::iter::empty().collect()),
            other => Err(ConvertError::unexpected("BS (binary set)", &other)),
        }
    }
}
macro_rules! number_set {
    ($($t:ty),*) => {$(
        impl SetElement for $t {
            fn encode_set<'a>(items: impl Iterator<Item = &'a Self>) -> Result<AttributeValue, ConvertError> {
                items
                    .map(|n| match n.to_attribute_value()? {
                        AttributeValue::N(s) => Ok(s),
                        _ => unreachable!("numbers encode as N"),
                    })
                    .collect::<Result<_, _>>()
                    .map(AttributeValue::Ns)
            }
            fn decode_set<C: FromIterator<Self>>(value: AttributeValue) -> Result<C, ConvertError> {
                match value {
                    AttributeValue::Ns(v) => v
                        .into_iter()
                        .map(|n| <$t>::from_attribute_value(AttributeValue::N(n)))
                        .collect(),
                    AttributeValue::Null(_) => Ok(std::iter::empty().collect()),
                    other => Err(ConvertError::unexpected("NS (number set)", &other)),
                }
            }
        }
    )*};
}
number_set!(i8, i16, i32, i64, isize, u8, u16, u32, u64, usize, i128, u128);

impl<T: SetElement + Eq + Hash, S> ToAttributeValue for HashSet<T, S> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        if self.is_empty() {
            return Ok(AttributeValue::Null(true));
        }
        T::encode_set(self.iter())
    }
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}
impl<T: SetElement + Eq + Hash, S: BuildHasher + Default> FromAttributeValue for HashSet<T, S> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        T::decode_set(value)
    }
    fn from_absent() -> Option<Self> {
        Some(HashSet::default())
    }
}
impl<T: SetElement + Ord> ToAttributeValue for BTreeSet<T> {
    fn to_attribute_value(&self) -> Result<AttributeValue, ConvertError> {
        if self.is_empty() {
            return Ok(AttributeValue::Null(true));
        }
        T::encode_set(self.iter())
    }
    fn is_absent(&self) -> bool {
        self.is_empty()
    }
}
impl<T: SetElement + Ord> FromAttributeValue for BTreeSet<T> {
    fn from_attribute_value(value: AttributeValue) -> Result<Self, ConvertError> {
        T::decode_set(value)
    }
    fn from_absent() -> Option<Self> {
        Some(BTreeSet::new())
    }
}
