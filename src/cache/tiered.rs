//! [`Tiered`]: any number of layers, read top to bottom, filled bottom to top.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    CacheEntry, CacheError, CacheKey, CacheLayer, Contact, FillToken, LayerStats, Lookup, ProbeKey,
    RemoteEvent,
};

/// Layers composed in order: a read asks each layer in turn and fills the layers above the one
/// that answered; a fill goes to every layer; an invalidation goes to every layer, the lowest
/// first (so no layer can be refilled from a lower one that still holds the old value).
///
/// A layer that fails is skipped for that request (counted in its stats); the others go on.
/// Events published by a shared layer (Redis pub/sub) are applied to the layers above it by a
/// task on the Tokio runtime that [`layer`](Self::layer) was called on; when the shared layer
/// has a [`contact`](CacheLayer::contact), the layers above it serve nothing while that
/// task has not heard one recently enough ([`Contact`]).
///
/// ```
/// use dynamite::cache::{MokaLayer, Tiered};
/// let cache = Tiered::new().layer(MokaLayer::new(64 << 20));
/// ```
#[derive(Clone, Default)]
pub struct Tiered {
    layers: Vec<Arc<dyn CacheLayer>>,
    /// Per shared layer with a heartbeat: its index and what its forwarder heard. The layers
    /// above it are skipped while it is not current.
    gates: Vec<(usize, Arc<Contact>)>,
    refill_ttl: Option<Duration>,
}

impl std::fmt::Debug for Tiered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.layers.iter().map(|l| l.name()))
            .finish()
    }
}

async fn clear_all(layers: &[Arc<dyn CacheLayer>]) {
    for l in layers {
        let _ = l.clear().await;
    }
}

/// Applies a shared layer's events to the layers above it, in order.
async fn forward(
    mut events: broadcast::Receiver<RemoteEvent>,
    above: Vec<Arc<dyn CacheLayer>>,
    contact: Option<Arc<Contact>>,
) {
    loop {
        match events.recv().await {
            Ok(RemoteEvent::Invalidated(scope)) => {
                for l in &above {
                    let _ = l.invalidate_local(&scope).await;
                }
            }
            Ok(RemoteEvent::Cleared) => clear_all(&above).await,
            Ok(RemoteEvent::Heartbeat { sent }) => {
                // A new run of heartbeats (after an outage, a stall, or at start): the layers
                // above may hold entries whose invalidations were never published (a writer
                // holds them back while Redis is unreachable, and may replay them after this
                // instance's grace). They serve nothing during the grace; drop them now.
                if contact
                    .as_ref()
                    .is_some_and(|c| c.heard(sent, Instant::now()))
                {
                    clear_all(&above).await;
                }
            }
            // Missed events: we cannot know which scopes; drop everything.
            Err(broadcast::error::RecvError::Lagged(_)) => clear_all(&above).await,
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

impl Tiered {
    /// No layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a layer below the ones already added. When the new layer publishes remote
    /// events, a task (on the current Tokio runtime) applies them to the layers above.
    #[must_use]
    pub fn layer(mut self, layer: impl CacheLayer) -> Self {
        let layer: Arc<dyn CacheLayer> = Arc::new(layer);
        if let Some(events) = layer.remote_events() {
            if !self.layers.is_empty() {
                let contact = layer.contact().map(|c| Arc::new(Contact::following(c)));
                if let Some(contact) = &contact {
                    self.gates.push((self.layers.len(), contact.clone()));
                }
                match tokio::runtime::Handle::try_current() {
                    Ok(handle) => {
                        handle.spawn(forward(events, self.layers.clone(), contact));
                    }
                    Err(_) => tracing::warn!(
                        layer = %layer.name(),
                        "Tiered::layer called outside a Tokio runtime: the layers above it \
                         never hear its invalidations (and serve nothing if it has a heartbeat)"
                    ),
                }
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

    /// How many layers from the top may not serve now (a shared layer below them is out of
    /// contact).
    fn gated(&self) -> usize {
        if self.gates.is_empty() {
            return 0;
        }
        let now = Instant::now();
        self.gates
            .iter()
            .filter(|(_, contact)| !contact.is_current(now))
            .map(|(index, _)| *index)
            .max()
            .unwrap_or(0)
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
        let gated = self.gated();
        for (i, layer) in self.layers.iter().enumerate() {
            if i < gated {
                tokens.push(unfillable());
                continue;
            }
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

    /// The first layer's probe, when it may serve now (no shared layer below it is out of
    /// contact): a hit there is what [`get`](CacheLayer::get) would return, with nothing to
    /// refill above it. Anything else is for `get`.
    fn probe(&self, key: &ProbeKey<'_>) -> Option<CacheEntry> {
        if self.gated() > 0 {
            return None;
        }
        self.layers.first()?.probe(key)
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

    fn remote_events(&self) -> Option<broadcast::Receiver<RemoteEvent>> {
        self.layers.iter().rev().find_map(|l| l.remote_events())
    }

    fn contact(&self) -> Option<&Contact> {
        match self.gates.last() {
            Some((_, contact)) => Some(contact),
            None => self.layers.iter().rev().find_map(|l| l.contact()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Heartbeat, MokaLayer};

    /// A shared layer that holds nothing and publishes the events the test sends.
    struct Beacon {
        events: broadcast::Sender<RemoteEvent>,
        contact: Contact,
    }

    #[async_trait]
    impl CacheLayer for Beacon {
        fn name(&self) -> String {
            "beacon".to_owned()
        }
        async fn get(&self, _: &CacheKey) -> Result<Lookup, CacheError> {
            Err(CacheError::Unavailable {
                layer: "beacon".to_owned(),
                reason: "holds nothing",
            })
        }
        async fn put(
            &self,
            _: &CacheKey,
            _: CacheEntry,
            _: Duration,
            _: &FillToken,
        ) -> Result<(), CacheError> {
            Ok(())
        }
        async fn invalidate(&self, _: &str) -> Result<(), CacheError> {
            Ok(())
        }
        async fn clear(&self) -> Result<(), CacheError> {
            Ok(())
        }
        fn stats(&self) -> Vec<(String, LayerStats)> {
            Vec::new()
        }
        fn remote_events(&self) -> Option<broadcast::Receiver<RemoteEvent>> {
            Some(self.events.subscribe())
        }
        fn contact(&self) -> Option<&Contact> {
            Some(&self.contact)
        }
    }

    fn key() -> CacheKey {
        CacheKey {
            entry: "t|E:0|i|0|S1".to_owned(),
            scope: "t|i|S1".to_owned(),
        }
    }

    async fn beat(events: &broadcast::Sender<RemoteEvent>) {
        events
            .send(RemoteEvent::Heartbeat {
                sent: Instant::now(),
            })
            .expect("the forwarder listens");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    #[tokio::test]
    async fn the_layers_above_are_emptied_when_heartbeats_resume_after_a_gap() {
        let (events, _) = broadcast::channel(64);
        let policy = Heartbeat::new(Duration::from_millis(100), Duration::from_millis(50))
            .with_startup_grace(Duration::from_millis(10));
        let beacon = Beacon {
            events: events.clone(),
            contact: Contact::new(policy),
        };
        let tiered = Tiered::new().layer(MokaLayer::new(1 << 20)).layer(beacon);
        for _ in 0..4 {
            beat(&events).await;
        }
        let l1 = tiered.layers()[0].clone();
        let Lookup::Miss(token) = l1.get(&key()).await.expect("moka answers") else {
            panic!("empty")
        };
        let entry = CacheEntry::from_bytes(vec![7]);
        l1.put(&key(), entry, Duration::from_secs(60), &token)
            .await
            .expect("put");
        beat(&events).await;
        assert!(
            matches!(l1.get(&key()).await, Ok(Lookup::Hit(_))),
            "kept while in contact"
        );

        // Out of contact for longer than the bound (invalidations may have been held back by
        // their writers meanwhile), then heartbeats again.
        tokio::time::sleep(Duration::from_millis(200)).await;
        beat(&events).await;
        assert!(
            matches!(l1.get(&key()).await, Ok(Lookup::Miss(_))),
            "dropped when the new run of heartbeats began"
        );
    }
}
