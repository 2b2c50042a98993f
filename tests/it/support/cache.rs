//! Helpers shared by the `cache` and `cache_redis` topics: counting DynamoDB requests per test
//! (from the `dynamite` spans, through the process-wide capture of `support::trace`),
//! recording the keys of BatchGetItem requests, building cached clients on the local DynamoDB,
//! and the `CacheLayer` contract every layer honours.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::Intercept;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::config_bag::ConfigBag;
use dynamite::cache::{CacheConfig, CacheEntry, CacheKey, CacheLayer, Lookup};
use dynamite::Client;

pub(crate) use super::trace::requests;

/// Installs the process-wide span capture that [`requests`] reads (once per test binary).
pub(crate) fn install() {
    super::trace::install_global();
}

/// Records the keys asked for by each BatchGetItem request (key values ordered by attribute
/// name, joined with `/`). An SDK interceptor, so it sees exactly what goes on the wire.
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchKeys(Arc<Mutex<Vec<Vec<String>>>>);

impl BatchKeys {
    /// The keys of every request so far (each request's keys sorted); then forgets them.
    pub(crate) fn take(&self) -> Vec<Vec<String>> {
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
pub(crate) async fn plain() -> Client {
    super::client().await
}

/// A client sharing `base`'s SDK client and table prefix, reading through `layer`.
pub(crate) fn with_cache(base: &Client, layer: impl CacheLayer, config: CacheConfig) -> Client {
    Client::builder(base.sdk().clone())
        .table_prefix(base.table_prefix())
        .cache(layer)
        .cache_config(config)
        .build()
}

/// Like [`with_cache`], with an interceptor recording BatchGetItem keys.
pub(crate) fn with_cache_and_keys(
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
#[cfg_attr(not(feature = "redis"), allow(dead_code))] // used by cache_redis
pub(crate) async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
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
pub(crate) async fn layer_contract(layer: &dyn CacheLayer, label: &str) {
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
pub(crate) async fn clear_does_not_undo_invalidations(layer: &dyn CacheLayer, label: &str) {
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
