//! What the layer and its background tasks share: the connection, keys, health, held-back
//! invalidations, the heartbeat's contact, and every command but the lookup and fill.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::connection::Connection;
use super::scripts::{fresh_generation, glob_escape, Scripts};
use crate::cache::{CacheError, CacheKey, Contact, RemoteEvent, StatsCounter};

#[derive(Default)]
pub(super) struct Health {
    /// Requests skip Redis until then (after a fault).
    pub(super) down_until: Option<Instant>,
    /// Scopes whose invalidation is not written yet, each with the sequence number of its
    /// latest hold (a scope held again while being written is written again).
    pub(super) pending: HashMap<String, u64>,
    /// Sequence of holds.
    pub(super) holds: u64,
    /// More than `max_pending` scopes were pending: move every generation.
    pub(super) overflowed: bool,
    /// Overflows so far (one that happens while writing is not cleared by that write).
    pub(super) overflows: u64,
    /// Pending invalidations are being written: nobody else uses Redis meanwhile.
    pub(super) replaying: bool,
}

/// What the layer and its two background tasks share.
pub(super) struct Shared {
    pub(super) conn: Connection,
    pub(super) prefix: String,
    pub(super) channel: String,
    pub(super) alive_channel: String,
    pub(super) instance: String,
    pub(super) timeout: Duration,
    pub(super) retry_interval: Duration,
    pub(super) generation_ttl: Duration,
    pub(super) max_pending: usize,
    pub(super) stats: StatsCounter,
    pub(super) tx: broadcast::Sender<RemoteEvent>,
    /// Heartbeats heard back by the subscription.
    pub(super) contact: Contact,
    /// Heartbeats sent and not heard yet: sequence number, when.
    pub(super) sent: Mutex<VecDeque<(u64, Instant)>>,
    pub(super) health: Mutex<Health>,
    pub(super) healthy: AtomicBool,
    pub(super) scripts: Scripts,
}

impl Shared {
    /// The hash tag of a scope: its entries and generation share a Cluster slot.
    pub(super) fn tag(scope: &str) -> String {
        format!("{{{:016x}}}", crate::cache::keys::fnv1a(scope.as_bytes()))
    }

    pub(super) fn entry_key(&self, key: &CacheKey) -> String {
        format!("{}{}e:{}", self.prefix, Self::tag(&key.scope), key.entry)
    }

    pub(super) fn generation_key(&self, scope: &str) -> String {
        format!("{}{}g:{scope}", self.prefix, Self::tag(scope))
    }

    pub(super) fn down() -> CacheError {
        CacheError::Unavailable {
            layer: "redis".into(),
            reason: "skipped after a recent fault, or while writing held-back invalidations",
        }
    }

    /// A message from the subscription.
    pub(super) fn heard(&self, channel: &str, payload: &[u8]) {
        if channel == self.alive_channel {
            let Some(sequence) = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                return;
            };
            let sent_at = {
                let mut sent = self.sent.lock().expect("heartbeats");
                let at = sent.iter().find(|(s, _)| *s == sequence).map(|(_, at)| *at);
                sent.retain(|(s, _)| *s > sequence);
                at
            };
            if let Some(sent) = sent_at {
                let heard = Instant::now();
                self.stats.pubsub_delay(heard - sent);
                self.contact.heard(sent, heard);
                let _ = self.tx.send(RemoteEvent::Heartbeat { sent });
            }
            return;
        }
        let Ok(payload) = std::str::from_utf8(payload) else {
            return;
        };
        if let Some((from, scope)) = payload.split_once('|') {
            if from != self.instance {
                let _ = self.tx.send(if scope == "*" {
                    RemoteEvent::Cleared
                } else {
                    RemoteEvent::Invalidated(scope.to_owned())
                });
            }
        }
    }

    /// Runs a command with the timeout; records health.
    pub(super) async fn run<T, F>(&self, what: &'static str, fut: F) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CacheError::Backend {
                layer: "redis".into(),
                source: Box::new(e),
            }),
            Err(_) => Err(CacheError::Timeout {
                layer: "redis".into(),
                after: self.timeout,
            }),
        };
        if let Err(e) = &result {
            self.stats.fault();
            self.healthy.store(false, Ordering::Relaxed);
            self.health.lock().expect("health").down_until =
                Some(Instant::now() + self.retry_interval);
            tracing::warn!(command = what, error = %e, "redis cache fault; reading DynamoDB");
        } else {
            self.healthy.store(true, Ordering::Relaxed);
        }
        result
    }

    pub(super) fn has_pending(&self) -> bool {
        let health = self.health.lock().expect("health");
        !health.pending.is_empty() || health.overflowed
    }

    /// Keeps an invalidation that could not be written (coalesced per scope, bounded).
    pub(super) fn hold(&self, scope: &str) {
        let mut health = self.health.lock().expect("health");
        health.holds += 1;
        let hold = health.holds;
        health.pending.insert(scope.to_owned(), hold);
        if health.pending.len() > self.max_pending {
            tracing::warn!(
                max = self.max_pending,
                "more redis invalidations held back than max_pending: every generation under the prefix will move"
            );
            health.pending.clear();
            health.overflowed = true;
            health.overflows += 1;
        }
    }

    /// The request path's gate: fails fast while Redis is considered down or invalidations
    /// are held back (writing them first when Redis may be back). Until they are all written,
    /// every caller is told the layer is down, so no entry they invalidate can be served.
    pub(super) async fn ready(&self) -> Result<(), CacheError> {
        {
            let mut health = self.health.lock().expect("health");
            if health.replaying
                || health
                    .down_until
                    .is_some_and(|until| Instant::now() < until)
            {
                return Err(Self::down());
            }
            if health.pending.is_empty() && !health.overflowed {
                health.down_until = None;
                return Ok(());
            }
            if health.overflowed {
                // Moving every generation is the background task's job, not a request's.
                return Err(Self::down());
            }
        }
        self.write_pending().await
    }

    /// Writes the held-back invalidations (one writer at a time). Each stays held until it
    /// is written; one held again meanwhile stays for the next round.
    pub(super) async fn write_pending(&self) -> Result<(), CacheError> {
        let (scopes, overflowed, overflows) = {
            let mut health = self.health.lock().expect("health");
            if health.replaying {
                return Err(Self::down());
            }
            health.replaying = true;
            let scopes: Vec<(String, u64)> = health
                .pending
                .iter()
                .map(|(s, h)| (s.clone(), *h))
                .collect();
            (scopes, health.overflowed, health.overflows)
        };
        let result = self.write_all(&scopes, overflowed).await;
        let mut health = self.health.lock().expect("health");
        health.replaying = false;
        let written = match &result {
            Ok(()) => scopes.len(),
            Err((written, _)) => *written,
        };
        for (scope, hold) in &scopes[..written] {
            if health.pending.get(scope) == Some(hold) {
                health.pending.remove(scope);
            }
        }
        if overflowed && health.overflows == overflows && result.is_ok() {
            health.overflowed = false;
        }
        match result {
            Ok(()) => {
                health.down_until = None;
                Ok(())
            }
            Err((_, e)) => Err(e),
        }
    }

    /// Writes `scopes` (after moving every generation, if `overflowed`); on failure, how many
    /// were written.
    pub(super) async fn write_all(
        &self,
        scopes: &[(String, u64)],
        overflowed: bool,
    ) -> Result<(), (usize, CacheError)> {
        if overflowed {
            self.move_every_generation().await.map_err(|e| (0, e))?;
        }
        const CONCURRENT: usize = 64;
        for (i, chunk) in scopes.chunks(CONCURRENT).enumerate() {
            let results =
                futures::future::join_all(chunk.iter().map(|(s, _)| self.write_invalidation(s)))
                    .await;
            if let Some(e) = results.into_iter().find_map(Result::err) {
                // The whole chunk again: moving a generation twice only costs a refill.
                return Err((i * CONCURRENT, e));
            }
        }
        Ok(())
    }

    /// Moves one scope's generation and publishes it: in one round trip on a single server.
    /// On a cluster the scope's node may not be the one that relays heartbeats, so the
    /// message goes through the channel's node after the move, and is sent even when the move
    /// failed (its node is down): other instances' L1s must not wait for that node.
    pub(super) async fn write_invalidation(&self, scope: &str) -> Result<(), CacheError> {
        let message = format!("{}|{scope}", self.instance);
        let generation = self.generation_key(scope);
        match &self.conn {
            Connection::Single(_) => self.move_generation(&generation, &message).await,
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(_) => {
                let moved = self.move_generation(&generation, "").await;
                let published = self.publish(&message).await;
                moved.and(published)
            }
        }
    }

    pub(super) async fn move_generation(
        &self,
        generation_key: &str,
        message: &str,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let mut invocation = self.scripts.invalidate.prepare_invoke();
        invocation
            .key(generation_key)
            .arg(fresh_generation())
            .arg(self.generation_ttl.as_millis().max(1) as u64)
            .arg(&self.channel)
            .arg(message);
        let repaired: i64 = self
            .run("invalidate", invocation.invoke_async(&mut conn))
            .await?;
        if repaired == 1 {
            self.stats.repaired();
            tracing::warn!(
                key = generation_key,
                "repaired a damaged redis generation key"
            );
        }
        Ok(())
    }

    /// After too many held-back invalidations: moves every generation under the prefix, then
    /// tells every instance to clear its L1.
    pub(super) async fn move_every_generation(&self) -> Result<(), CacheError> {
        let pattern = format!("{}{{*}}g:*", glob_escape(&self.prefix));
        for key in self.scan(&pattern).await? {
            self.move_generation(&key, "").await?;
        }
        self.publish_clear().await
    }

    pub(super) async fn publish_clear(&self) -> Result<(), CacheError> {
        self.publish(&format!("{}|*", self.instance)).await
    }

    pub(super) async fn publish(&self, message: &str) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        self.run(
            "publish",
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message)
                .query_async::<()>(&mut conn),
        )
        .await
    }
}
