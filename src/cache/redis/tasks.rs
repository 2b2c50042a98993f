//! The layer's two background tasks: the subscription (invalidations and heartbeats heard)
//! and the heartbeat (held-back invalidations written, then a heartbeat sent).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::shared::Shared;
use crate::cache::RemoteEvent;

/// Hears invalidations published by other instances and this instance's heartbeats; reconnects
/// (trying each URL in turn) when the connection drops, and then tells the layers above to drop
/// everything (messages may have been missed).
pub(super) async fn listen(
    shared: Arc<Shared>,
    urls: Vec<String>,
    subscribed: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = true;
    let mut subscribed = Some(subscribed);
    let pause = shared.contact.policy().staleness_bound / 5;
    for url in urls.iter().cycle() {
        if let Ok(mut pubsub) = subscribe(&shared, url).await {
            if !first {
                let _ = shared.tx.send(RemoteEvent::Cleared);
            }
            first = false;
            if let Some(s) = subscribed.take() {
                let _ = s.send(());
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                shared.heard(msg.get_channel_name(), msg.get_payload_bytes());
            }
        }
        tokio::time::sleep(pause).await;
    }
}

async fn subscribe(shared: &Shared, url: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = redis::Client::open(url)?.get_async_pubsub().await?;
    pubsub.subscribe(&shared.channel).await?;
    pubsub.subscribe(&shared.alive_channel).await?;
    Ok(pubsub)
}

/// Every `interval`: writes pending invalidations, then sends a heartbeat.
pub(super) async fn beat(shared: Arc<Shared>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sequence = 0u64;
    loop {
        ticks.tick().await;
        if shared.has_pending() {
            let _ = shared.write_pending().await;
        }
        sequence += 1;
        {
            let mut sent = shared.sent.lock().expect("heartbeats");
            sent.push_back((sequence, Instant::now()));
            while sent.len() > 256 {
                sent.pop_front();
            }
        }
        let mut conn = shared.conn.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&shared.alive_channel).arg(sequence);
        let publish = publish.query_async::<()>(&mut conn);
        if let Ok(Err(e)) = tokio::time::timeout(shared.timeout, publish).await {
            tracing::debug!(error = %e, "redis heartbeat not sent");
        }
    }
}
