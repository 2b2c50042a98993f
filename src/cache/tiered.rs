//! [`Tiered`]: any number of layers, read top to bottom, filled bottom to top.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{CacheEntry, CacheError, CacheKey, CacheLayer, FillToken, LayerStats, Lookup};

/// Layers composed in order: a read asks each layer in turn and fills the layers above the one
/// that answered; a fill goes to every layer; an invalidation goes to every layer, the lowest
/// first (so no layer can be refilled from a lower one that still holds the old value).
///
/// A layer that fails is skipped for that request (counted in its stats); the others go on.
/// Invalidations published by a shared layer (Redis pub/sub) are applied to the layers above it.
///
/// ```
/// use dynamite::cache::{MokaLayer, Tiered};
/// let cache = Tiered::new().layer(MokaLayer::new(64 << 20));
/// ```
#[derive(Clone, Default)]
pub struct Tiered {
    layers: Vec<Arc<dyn CacheLayer>>,
    refill_ttl: Option<Duration>,
}

impl std::fmt::Debug for Tiered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.name()))
            .finish()
    }
}

impl Tiered {
    /// No layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a layer below the ones already added. When the new layer publishes remote
    /// invalidations, a task (on the current Tokio runtime) applies them to the layers above.
    #[must_use]
    pub fn layer(mut self, layer: impl CacheLayer) -> Self {
        let layer: Arc<dyn CacheLayer> = Arc::new(layer);
        if let (Some(mut rx), Ok(handle)) = (
            layer.remote_invalidations(),
            tokio::runtime::Handle::try_current(),
        ) {
            let above: Vec<Arc<dyn CacheLayer>> = self.layers.clone();
            if !above.is_empty() {
                handle.spawn(async move {
                    loop {
                        match rx.recv().await {
                            // "*": the publisher cleared everything, or messages were missed.
                            Ok(scope) if scope == "*" => {
                                for l in &above {
                                    let _ = l.clear().await;
                                }
                            }
                            Ok(scope) => {
                                for l in &above {
                                    let _ = l.invalidate_local(&scope).await;
                                }
                            }
                            // Missed messages: we cannot know which scopes; drop everything.
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                for l in &above {
                                    let _ = l.clear().await;
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        }
                    }
                });
            }
        }
        self.layers.push(layer);
        self
    }

    /// Time to live of entries copied into upper layers from a lower one (60 s by default;
    /// invalidations still apply to them).
    #[must_use]
    pub fn refill_ttl(mut self, ttl: Duration) -> Self {
        self.refill_ttl = Some(ttl);
        self
    }

    /// The layers, top first.
    pub fn layers(&self) -> &[Arc<dyn CacheLayer>] {
        &self.layers
    }
}

/// A token part that can never match: the layer failed at lookup, so it is not filled.
fn unfillable() -> FillToken {
    FillToken::new(u64::MAX)
}

#[async_trait]
impl CacheLayer for Tiered {
    fn name(&self) -> String {
        format!(
            "tiered({})",
            self.layers
                .iter()
                .map(|l| l.name())
                .collect::<Vec<_>>()
                .join(" > ")
        )
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, CacheError> {
        let mut tokens = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            match layer.get(key).await {
                Ok(Lookup::Hit(entry)) => {
                    // Never longer than the entry has left below.
                    let cap = self.refill_ttl.unwrap_or(Duration::from_secs(60));
                    let ttl = entry.expires_in().map_or(cap, |left| left.min(cap));
                    if ttl.is_zero() {
                        return Ok(Lookup::Hit(entry));
                    }
                    for (above, token) in self.layers[..i].iter().zip(&tokens) {
                        if let Err(e) = above.put(key, entry.clone(), ttl, token).await {
                            tracing::warn!(layer = %above.name(), error = %e, "cache refill failed");
                        }
                    }
                    return Ok(Lookup::Hit(entry));
                }
                Ok(Lookup::Miss(token)) => tokens.push(token),
                Err(e) => {
                    tracing::warn!(layer = %layer.name(), error = %e, "cache lookup failed; skipping layer");
                    tokens.push(unfillable());
                }
            }
        }
        Ok(Lookup::Miss(FillToken::composite(tokens)))
    }

    async fn put(
        &self,
        key: &CacheKey,
        entry: CacheEntry,
        ttl: Duration,
        token: &FillToken,
    ) -> Result<(), CacheError> {
        let mut first_error = None;
        for (layer, part) in self.layers.iter().zip(token.parts()) {
            if *part == unfillable() {
                continue;
            }
            if let Err(e) = layer.put(key, entry.clone(), ttl, part).await {
                tracing::warn!(layer = %layer.name(), error = %e, "cache fill failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn invalidate(&self, scope: &str) -> Result<(), CacheError> {
        let mut first_error = None;
        for layer in self.layers.iter().rev() {
            if let Err(e) = layer.invalidate(scope).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn invalidate_local(&self, scope: &str) -> Result<(), CacheError> {
        for layer in self.layers.iter().rev() {
            layer.invalidate_local(scope).await?;
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), CacheError> {
        let mut first_error = None;
        for layer in self.layers.iter().rev() {
            if let Err(e) = layer.clear().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn stats(&self) -> Vec<(String, LayerStats)> {
        self.layers.iter().flat_map(|l| l.stats()).collect()
    }

    fn remote_invalidations(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.remote_invalidations())
    }
}
