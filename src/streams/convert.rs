//! The one place where other value types become DynamoDB's: the DynamoDB Streams SDK's
//! `AttributeValue` (a type of its own, though it has the same shape: aws-sdk-rust #1355) and
//! Lambda's event values (`serde_dynamo::AttributeValue`, what `aws_lambda_events` decodes
//! into). Everything in [`crate::streams`] converts images through these functions.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodbstreams::types::AttributeValue as StreamValue;
use aws_smithy_types::Blob;

use crate::{Error, Item};

/// A DynamoDB Streams SDK value as DynamoDB's. A value of a kind this SDK version does not
/// know (`Unknown`, from a newer service) is refused, never guessed.
pub(crate) fn from_stream_value(value: StreamValue) -> Result<AttributeValue, Error> {
    Ok(match value {
        StreamValue::S(s) => AttributeValue::S(s),
        StreamValue::N(n) => AttributeValue::N(n),
        StreamValue::B(b) => AttributeValue::B(b),
        StreamValue::Bool(b) => AttributeValue::Bool(b),
        StreamValue::Null(n) => AttributeValue::Null(n),
        StreamValue::Ss(s) => AttributeValue::Ss(s),
        StreamValue::Ns(n) => AttributeValue::Ns(n),
        StreamValue::Bs(b) => AttributeValue::Bs(b),
        StreamValue::L(l) => AttributeValue::L(
            l.into_iter()
                .map(from_stream_value)
                .collect::<Result<_, _>>()?,
        ),
        StreamValue::M(m) => AttributeValue::M(from_stream_item(m)?),
        other => return Err(unknown_kind(&format!("{other:?}"))),
    })
}

/// A DynamoDB Streams SDK image (or key) as a DynamoDB item.
pub(crate) fn from_stream_item(item: HashMap<String, StreamValue>) -> Result<Item, Error> {
    item.into_iter()
        .map(|(name, value)| Ok((name, from_stream_value(value)?)))
        .collect()
}

/// A Lambda event value (`serde_dynamo`'s, as `aws_lambda_events` decodes it) as DynamoDB's.
pub(crate) fn from_lambda_value(value: serde_dynamo::AttributeValue) -> AttributeValue {
    use serde_dynamo::AttributeValue as L;
    match value {
        L::S(s) => AttributeValue::S(s),
        L::N(n) => AttributeValue::N(n),
        L::B(b) => AttributeValue::B(Blob::new(b)),
        L::Bool(b) => AttributeValue::Bool(b),
        L::Null(n) => AttributeValue::Null(n),
        L::Ss(s) => AttributeValue::Ss(s),
        L::Ns(n) => AttributeValue::Ns(n),
        L::Bs(b) => AttributeValue::Bs(b.into_iter().map(Blob::new).collect()),
        L::L(l) => AttributeValue::L(l.into_iter().map(from_lambda_value).collect()),
        L::M(m) => AttributeValue::M(from_lambda_item(m)),
    }
}

/// A Lambda event image (or key) as a DynamoDB item.
pub(crate) fn from_lambda_item(item: HashMap<String, serde_dynamo::AttributeValue>) -> Item {
    item.into_iter()
        .map(|(name, value)| (name, from_lambda_value(value)))
        .collect()
}

fn unknown_kind(value: &str) -> Error {
    Error::Conversion {
        entity: "stream record".to_owned(),
        attribute: "image".to_owned(),
        reason: format!("a value of a kind this SDK does not know: {value}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One value of every kind, nested in a list inside a map, as each source type.
    fn sources() -> (StreamValue, serde_dynamo::AttributeValue, AttributeValue) {
        use serde_dynamo::AttributeValue as L;
        let stream = StreamValue::M(HashMap::from([
            ("s".to_owned(), StreamValue::S("text".into())),
            ("n".to_owned(), StreamValue::N("-1.5e3".into())),
            ("b".to_owned(), StreamValue::B(Blob::new(vec![0, 255]))),
            ("t".to_owned(), StreamValue::Bool(true)),
            ("z".to_owned(), StreamValue::Null(true)),
            (
                "ss".to_owned(),
                StreamValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".to_owned(),
                StreamValue::Ns(vec!["1".into(), "2".into()]),
            ),
            (
                "bs".to_owned(),
                StreamValue::Bs(vec![Blob::new(vec![1]), Blob::new(vec![])]),
            ),
            (
                "l".to_owned(),
                StreamValue::L(vec![
                    StreamValue::M(HashMap::from([(
                        "deep".to_owned(),
                        StreamValue::N("7".into()),
                    )])),
                    StreamValue::L(vec![]),
                    StreamValue::M(HashMap::new()),
                ]),
            ),
        ]));
        let lambda = L::M(HashMap::from([
            ("s".to_owned(), L::S("text".into())),
            ("n".to_owned(), L::N("-1.5e3".into())),
            ("b".to_owned(), L::B(vec![0, 255])),
            ("t".to_owned(), L::Bool(true)),
            ("z".to_owned(), L::Null(true)),
            ("ss".to_owned(), L::Ss(vec!["a".into(), "b".into()])),
            ("ns".to_owned(), L::Ns(vec!["1".into(), "2".into()])),
            ("bs".to_owned(), L::Bs(vec![vec![1], vec![]])),
            (
                "l".to_owned(),
                L::L(vec![
                    L::M(HashMap::from([("deep".to_owned(), L::N("7".into()))])),
                    L::L(vec![]),
                    L::M(HashMap::new()),
                ]),
            ),
        ]));
        let expected = AttributeValue::M(HashMap::from([
            ("s".to_owned(), AttributeValue::S("text".into())),
            ("n".to_owned(), AttributeValue::N("-1.5e3".into())),
            ("b".to_owned(), AttributeValue::B(Blob::new(vec![0, 255]))),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("z".to_owned(), AttributeValue::Null(true)),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".into(), "2".into()]),
            ),
            (
                "bs".to_owned(),
                AttributeValue::Bs(vec![Blob::new(vec![1]), Blob::new(vec![])]),
            ),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::M(HashMap::from([(
                        "deep".to_owned(),
                        AttributeValue::N("7".into()),
                    )])),
                    AttributeValue::L(vec![]),
                    AttributeValue::M(HashMap::new()),
                ]),
            ),
        ]));
        (stream, lambda, expected)
    }

    #[test]
    fn stream_values_convert_kind_for_kind_at_any_depth() {
        let (stream, _, expected) = sources();
        assert_eq!(from_stream_value(stream).unwrap(), expected);
    }

    #[test]
    fn lambda_values_convert_kind_for_kind_at_any_depth() {
        let (_, lambda, expected) = sources();
        assert_eq!(from_lambda_value(lambda), expected);
    }

    #[test]
    fn items_convert_attribute_by_attribute() {
        let (stream, lambda, expected) = sources();
        let (StreamValue::M(stream), serde_dynamo::AttributeValue::M(lambda)) = (stream, lambda)
        else {
            unreachable!()
        };
        let AttributeValue::M(expected) = expected else {
            unreachable!()
        };
        assert_eq!(from_stream_item(stream).unwrap(), expected);
        assert_eq!(from_lambda_item(lambda), expected);
    }
}
