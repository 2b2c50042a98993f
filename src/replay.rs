//! Sending a batch again without keeping a copy of it.
//!
//! A BatchWriteItem or BatchGetItem moves its items or keys into the SDK's input: no copy is
//! made for the first attempt, which is the one that usually settles it. What comes back for
//! the next attempt depends on the answer:
//! - an answer hands back what it left undone (`UnprocessedItems`, `UnprocessedKeys`), owned;
//! - a failed attempt (throttled, a server error, a lost answer) hands back nothing, so the
//!   request's serialized body is kept — by [`KeepSentBody`], an interceptor every client's SDK
//!   config carries, for the requests sent inside [`keeping_body`] — and read back into items
//!   ([`write_requests`], [`batch_keys`]) only on that path.
//!
//! The body is kept as the SDK serialized it (a reference-counted buffer, not a copy), so the
//! cost on the normal path is one reference count per request.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine as _;
use serde_json::Value;

use crate::Item;

/// Where the body of the request sent inside [`keeping_body`] is put.
#[derive(Clone, Default)]
pub(crate) struct BodySlot(Arc<Mutex<Option<SdkBody>>>);

impl BodySlot {
    /// The body of the last request sent with this slot, taken out.
    pub(crate) fn take(&self) -> Option<SdkBody> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn put(&self, body: SdkBody) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(body);
    }
}

tokio::task_local! {
    static SLOT: BodySlot;
}

/// Runs `send` (one SDK request) so that its serialized body lands in `slot`.
pub(crate) fn keeping_body<F: Future>(slot: &BodySlot, send: F) -> impl Future<Output = F::Output> {
    SLOT.scope(slot.clone(), send)
}

/// The interceptor that keeps serialized bodies for [`keeping_body`]; inert for every other
/// request.
#[derive(Debug)]
pub(crate) struct KeepSentBody;

impl KeepSentBody {
    pub(crate) const NAME: &'static str = "dynamite::KeepSentBody";
}

impl Intercept for KeepSentBody {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // Outside `keeping_body` there is no slot: nothing to do.
        let _ = SLOT.try_with(|slot| {
            if let Some(body) = context.request().body().try_clone() {
                slot.put(body);
            }
        });
        Ok(())
    }
}

/// A kept body that could not be read back (it always can, unless the SDK changed its wire
/// format).
#[derive(Debug)]
pub(crate) struct Unreadable(pub(crate) String);

fn unreadable(what: impl Into<String>) -> Unreadable {
    Unreadable(what.into())
}

fn parse(body: &SdkBody) -> Result<Value, Unreadable> {
    let bytes = body.bytes().ok_or_else(|| unreadable("a streaming body"))?;
    serde_json::from_slice(bytes).map_err(|e| unreadable(e.to_string()))
}

/// The write requests of a kept BatchWriteItem body, per table.
pub(crate) fn write_requests(
    body: &SdkBody,
) -> Result<Vec<(String, Vec<WriteRequest>)>, Unreadable> {
    let Value::Object(mut root) = parse(body)? else {
        return Err(unreadable("not an object"));
    };
    let Some(Value::Object(tables)) = root.remove("RequestItems") else {
        return Err(unreadable("no RequestItems"));
    };
    let mut out = Vec::with_capacity(tables.len());
    for (table, requests) in tables {
        let Value::Array(requests) = requests else {
            return Err(unreadable("RequestItems: not a list"));
        };
        let mut decoded = Vec::with_capacity(requests.len());
        for request in requests {
            decoded.push(write_request(request)?);
        }
        out.push((table, decoded));
    }
    Ok(out)
}

fn write_request(request: Value) -> Result<WriteRequest, Unreadable> {
    let Value::Object(mut request) = request else {
        return Err(unreadable("a write request: not an object"));
    };
    if let Some(put) = request.remove("PutRequest") {
        let item = item(member(put, "Item")?)?;
        let put = PutRequest::builder()
            .set_item(Some(item))
            .build()
            .map_err(|e| unreadable(e.to_string()))?;
        return Ok(WriteRequest::builder().put_request(put).build());
    }
    if let Some(delete) = request.remove("DeleteRequest") {
        let key = item(member(delete, "Key")?)?;
        let delete = DeleteRequest::builder()
            .set_key(Some(key))
            .build()
            .map_err(|e| unreadable(e.to_string()))?;
        return Ok(WriteRequest::builder().delete_request(delete).build());
    }
    Err(unreadable(
        "a write request that is neither a put nor a delete",
    ))
}

/// The keys of one table in a kept BatchGetItem body.
pub(crate) fn batch_keys(body: &SdkBody, table: &str) -> Result<Vec<Item>, Unreadable> {
    let Value::Object(mut root) = parse(body)? else {
        return Err(unreadable("not an object"));
    };
    let Some(Value::Object(mut tables)) = root.remove("RequestItems") else {
        return Err(unreadable("no RequestItems"));
    };
    let asked = tables
        .remove(table)
        .ok_or_else(|| unreadable(format!("no keys of table {table}")))?;
    let Value::Array(keys) = member(asked, "Keys")? else {
        return Err(unreadable("Keys: not a list"));
    };
    keys.into_iter().map(item).collect()
}

fn member(value: Value, name: &str) -> Result<Value, Unreadable> {
    match value {
        Value::Object(mut map) => map
            .remove(name)
            .ok_or_else(|| unreadable(format!("no {name}"))),
        _ => Err(unreadable(format!("{name}: not in an object"))),
    }
}

fn item(value: Value) -> Result<Item, Unreadable> {
    let Value::Object(map) = value else {
        return Err(unreadable("an item: not an object"));
    };
    map.into_iter()
        .map(|(name, value)| Ok((name, attribute_value(value)?)))
        .collect()
}

/// DynamoDB's JSON form of an attribute value.
fn attribute_value(value: Value) -> Result<AttributeValue, Unreadable> {
    let Value::Object(map) = value else {
        return Err(unreadable("an attribute value: not an object"));
    };
    let mut members = map.into_iter();
    let (Some((tag, inner)), None) = (members.next(), members.next()) else {
        return Err(unreadable("an attribute value without exactly one type"));
    };
    let text = |v: Value| match v {
        Value::String(s) => Ok(s),
        _ => Err(unreadable(format!("{tag}: not a string"))),
    };
    let list = |v: Value| match v {
        Value::Array(items) => Ok(items),
        _ => Err(unreadable(format!("{tag}: not a list"))),
    };
    let blob = |v: Value| -> Result<aws_smithy_types::Blob, Unreadable> {
        let encoded = text(v)?;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map(aws_smithy_types::Blob::new)
            .map_err(|e| unreadable(e.to_string()))
    };
    Ok(match tag.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(|| unreadable("BOOL"))?),
        "NULL" => AttributeValue::Null(inner.as_bool().ok_or_else(|| unreadable("NULL"))?),
        "SS" => AttributeValue::Ss(
            list(inner)?
                .into_iter()
                .map(text)
                .collect::<Result<_, _>>()?,
        ),
        "NS" => AttributeValue::Ns(
            list(inner)?
                .into_iter()
                .map(text)
                .collect::<Result<_, _>>()?,
        ),
        "BS" => AttributeValue::Bs(
            list(inner)?
                .into_iter()
                .map(blob)
                .collect::<Result<_, _>>()?,
        ),
        "L" => AttributeValue::L(
            list(inner)?
                .into_iter()
                .map(attribute_value)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(item(inner)?),
        other => return Err(unreadable(format!("unknown attribute type {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_type() -> Item {
        let m = Item::from([("inner".to_owned(), AttributeValue::S("x".into()))]);
        Item::from([
            (
                "s".to_owned(),
                AttributeValue::S("text \"quoted\" é".into()),
            ),
            ("n".to_owned(), AttributeValue::N("-1.5e3".into())),
            ("b".to_owned(), AttributeValue::B(vec![0, 1, 255].into())),
            ("t".to_owned(), AttributeValue::Bool(true)),
            ("z".to_owned(), AttributeValue::Null(true)),
            (
                "ss".to_owned(),
                AttributeValue::Ss(vec!["a".into(), "b".into()]),
            ),
            (
                "ns".to_owned(),
                AttributeValue::Ns(vec!["1".into(), "2.5".into()]),
            ),
            ("bs".to_owned(), AttributeValue::Bs(vec![vec![7u8].into()])),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    AttributeValue::N("1".into()),
                    AttributeValue::M(m.clone()),
                ]),
            ),
            ("m".to_owned(), AttributeValue::M(m)),
        ])
    }

    /// Serializes a request the way the SDK does, through a real client against an endpoint
    /// that refuses connections, and returns the kept body.
    async fn kept<F, Fut>(send: F) -> SdkBody
    where
        F: FnOnce(aws_sdk_dynamodb::Client) -> Fut,
        Fut: Future,
    {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .endpoint_url("http://127.0.0.1:9")
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "k", "s", None, None, "test",
            ))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .interceptor(KeepSentBody)
            .build();
        let slot = BodySlot::default();
        keeping_body(&slot, send(aws_sdk_dynamodb::Client::from_conf(config))).await;
        slot.take().expect("the body was kept")
    }

    #[tokio::test]
    async fn a_kept_batch_write_reads_back_as_sent() {
        let item = every_type();
        let key = Item::from([("s".to_owned(), AttributeValue::S("k".into()))]);
        let requests = vec![
            WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build().unwrap())
                .build(),
            WriteRequest::builder()
                .delete_request(DeleteRequest::builder().set_key(Some(key)).build().unwrap())
                .build(),
        ];
        let sent = requests.clone();
        let body = kept(|sdk| async move {
            let _ = sdk
                .batch_write_item()
                .request_items("t1", sent)
                .send()
                .await;
        })
        .await;
        assert_eq!(
            write_requests(&body).unwrap(),
            vec![("t1".to_owned(), requests)]
        );
    }

    #[tokio::test]
    async fn kept_batch_get_keys_read_back_as_sent() {
        let keys = vec![
            every_type(),
            Item::from([("s".to_owned(), AttributeValue::S("2".into()))]),
        ];
        let sent = keys.clone();
        let body = kept(|sdk| async move {
            let _ = sdk
                .batch_get_item()
                .request_items(
                    "t1",
                    aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                        .set_keys(Some(sent))
                        .build()
                        .unwrap(),
                )
                .send()
                .await;
        })
        .await;
        assert_eq!(batch_keys(&body, "t1").unwrap(), keys);
        assert!(batch_keys(&body, "t2").is_err());
    }
}
