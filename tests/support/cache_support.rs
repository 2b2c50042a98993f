//! Helpers shared by `tests/cache.rs` and `tests/cache_redis.rs`: counting DynamoDB requests
//! per test (from the `dynamite` spans), recording the keys of BatchGetItem requests, and
//! building cached clients on the local DynamoDB.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::Intercept;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::config_bag::ConfigBag;
use dynamite::cache::{CacheConfig, CacheLayer};
use dynamite::Client;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// `(table, operation)` of every `dynamite` span opened in this test binary.
type Spans = Arc<Mutex<Vec<(String, String)>>>;

static SPANS: OnceLock<Spans> = OnceLock::new();

struct Capture(Spans);

#[derive(Default)]
struct Fields {
    table: String,
    operation: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "table" => self.table = value.to_owned(),
            "operation" => self.operation = value.to_owned(),
            _ => {}
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() != "dynamite" {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((fields.table, fields.operation));
    }
}

/// Installs the span capture as the global subscriber (once per test binary).
///
/// A global subscriber sees the spans of every thread, so multi-threaded tests are counted
/// too, and it sidesteps tracing's per-callsite interest cache (which, with a thread-local
/// default, can be computed from another test's thread and stick at "never"). Every test
/// uses its own table prefix, so each counts only its own requests.
pub fn install() {
    SPANS.get_or_init(|| {
        let spans = Spans::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(Capture(spans.clone())),
        )
        .expect("no other global subscriber in this test binary");
        spans
    });
}

/// DynamoDB requests of `operation` sent so far to the tables of `db` (by its table prefix).
pub fn requests(db: &Client, operation: &str) -> usize {
    let prefix = db.table_prefix();
    SPANS
        .get()
        .expect("install() first")
        .lock()
        .unwrap()
        .iter()
        .filter(|(table, op)| op == operation && table.starts_with(prefix))
        .count()
}

/// Records the keys asked for by each BatchGetItem request (key values ordered by attribute
/// name, joined with `/`). An SDK interceptor, so it sees exactly what goes on the wire.
#[derive(Debug, Clone, Default)]
pub struct BatchKeys(Arc<Mutex<Vec<Vec<String>>>>);

impl BatchKeys {
    /// The keys of every request so far (each request's keys sorted); then forgets them.
    pub fn take(&self) -> Vec<Vec<String>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for BatchKeys {
    fn name(&self) -> &'static str {
        "BatchKeys"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(input) = context.input().downcast_ref::<BatchGetItemInput>() {
            let mut keys: Vec<String> = input
                .request_items()
                .into_iter()
                .flat_map(|items| items.values())
                .flat_map(|ka| ka.keys())
                .map(|key| {
                    let mut attrs: Vec<(&String, &AttributeValue)> = key.iter().collect();
                    attrs.sort_by(|a, b| a.0.cmp(b.0));
                    attrs
                        .into_iter()
                        .map(|(_, v)| match v {
                            AttributeValue::S(s) => s.clone(),
                            AttributeValue::N(n) => n.clone(),
                            other => format!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            keys.sort();
            self.0.lock().unwrap().push(keys);
        }
        Ok(())
    }
}

/// A client with a fresh table prefix and no cache (for set-up and for writes that must not
/// invalidate anything, like another program writing to the table).
pub async fn plain() -> Client {
    super::common::client().await
}

/// A client sharing `base`'s SDK client and table prefix, reading through `layer`.
pub fn with_cache(base: &Client, layer: impl CacheLayer, config: CacheConfig) -> Client {
    Client::builder(base.sdk().clone())
        .table_prefix(base.table_prefix())
        .cache(layer)
        .cache_config(config)
        .build()
}

/// Like [`with_cache`], with an interceptor recording BatchGetItem keys.
pub fn with_cache_and_keys(
    base: &Client,
    layer: impl CacheLayer,
    config: CacheConfig,
    keys: &BatchKeys,
) -> Client {
    let conf = base
        .sdk()
        .config()
        .to_builder()
        .interceptor(keys.clone())
        .build();
    Client::builder(aws_sdk_dynamodb::Client::from_conf(conf))
        .table_prefix(base.table_prefix())
        .cache(layer)
        .cache_config(config)
        .build()
}

/// Polls `check` every 10 ms until it returns true or `within` has passed; whether it did.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

use dynamite::cache::{CacheEntry, CacheKey, Lookup};

fn contract_key(n: u64, k: &str) -> CacheKey {
    CacheKey {
        entry: format!("contract-{n}|E:0|i|0|{k}"),
        scope: format!("contract-{n}|i|{k}"),
    }
}

fn contract_entry(s: &str) -> CacheEntry {
    CacheEntry::from_bytes(s.as_bytes().to_vec())
}

fn is_miss(l: Lookup) -> bool {
    matches!(l, Lookup::Miss(_))
}

/// `layer` honours the [`CacheLayer`] contract on scopes and fill tokens.
pub async fn layer_contract(layer: &dyn CacheLayer, label: &str) {
    let key = contract_key(fastrand::u64(..), "k");
    let ttl = Duration::from_secs(60);
    let miss = |l: Lookup| match l {
        Lookup::Miss(t) => t,
        Lookup::Hit(e) => panic!("{label}: unexpected hit {e:?}"),
    };
    let hit = |l: Lookup| match l {
        Lookup::Hit(e) => e.bytes().to_vec(),
        Lookup::Miss(_) => panic!("{label}: unexpected miss"),
    };

    let token = miss(layer.get(&key).await.unwrap());
    layer
        .put(&key, contract_entry("v1"), ttl, &token)
        .await
        .unwrap();
    assert_eq!(hit(layer.get(&key).await.unwrap()), b"v1", "{label}");

    // An invalidation drops the entry.
    layer.invalidate(&key.scope).await.unwrap();
    let token = miss(layer.get(&key).await.unwrap());
    // A fill whose token predates an invalidation is dropped.
    layer.invalidate(&key.scope).await.unwrap();
    layer
        .put(&key, contract_entry("stale"), ttl, &token)
        .await
        .unwrap();
    assert!(
        is_miss(layer.get(&key).await.unwrap()),
        "{label}: a fill older than an invalidation was kept"
    );

    // A token of the current generation fills.
    let token = miss(layer.get(&key).await.unwrap());
    layer
        .put(&key, contract_entry("v2"), ttl, &token)
        .await
        .unwrap();
    assert_eq!(hit(layer.get(&key).await.unwrap()), b"v2", "{label}");

    // clear() drops everything.
    layer.clear().await.unwrap();
    assert!(is_miss(layer.get(&key).await.unwrap()), "{label}: clear()");
}

/// A fill whose token predates an invalidation stays dropped when `clear()` runs between the
/// invalidation and the fill.
pub async fn clear_does_not_undo_invalidations(layer: &dyn CacheLayer, label: &str) {
    let key = contract_key(fastrand::u64(..), "k2");
    let Lookup::Miss(token) = layer.get(&key).await.unwrap() else {
        panic!("{label}: a new key hit");
    };
    // (A reader missed and is loading the item; a writer changes it and invalidates; someone
    // clears the cache; the reader fills with what it loaded before the write.)
    layer.invalidate(&key.scope).await.unwrap();
    layer.clear().await.unwrap();
    layer
        .put(
            &key,
            contract_entry("stale"),
            Duration::from_secs(60),
            &token,
        )
        .await
        .unwrap();
    assert!(
        is_miss(layer.get(&key).await.unwrap()),
        "{label}: a fill older than an invalidation was kept because clear() ran in between"
    );
}
