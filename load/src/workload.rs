//! The table, its items, seeding, and the operations each workload sends through dynamite.

use std::time::{SystemTime, UNIX_EPOCH};

use dynamite::{Client, Entity};
use serde::{Deserialize, Serialize};

use crate::args::{Config, KeyChoice};
use crate::keys::KeyDist;

/// The item every workload reads and writes. The table is `<prefix>items`, keyed by partition
/// (`pk`) and position in the partition (`sk`), so a query reads one partition.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "items")]
pub(crate) struct LoadItem {
    /// `p<partition number>`.
    #[dynamite(partition_key)]
    pub(crate) pk: String,
    /// The item's position in its partition.
    #[dynamite(sort_key)]
    pub(crate) sk: u64,
    /// Random text of `--payload-bytes` bytes.
    pub(crate) payload: String,
    /// How many times the item was written by the run (0 when seeded).
    pub(crate) writes: u64,
    /// When the item was last written, in ms since the Unix epoch.
    pub(crate) updated_at: u64,
}

/// What each operation of a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// `get` of one item.
    Get,
    /// `put` of one whole item.
    Put,
    /// `find` of one partition (a Query).
    Query,
    /// `batch_get` of N keys and `batch_write` of N items, alternating.
    Batch,
    /// Gets and puts, `--read-ratio` of them gets.
    Mix,
}

impl Workload {
    /// Every workload, in the order `--help` lists them.
    pub(crate) const ALL: [Workload; 5] = [
        Workload::Get,
        Workload::Put,
        Workload::Query,
        Workload::Batch,
        Workload::Mix,
    ];

    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Get => "get",
            Workload::Put => "put",
            Workload::Query => "query",
            Workload::Batch => "batch",
            Workload::Mix => "mix",
        }
    }
}

/// One operation as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum OpKind {
    /// `LoadItem::get`.
    Get,
    /// `LoadItem::put`.
    Put,
    /// `LoadItem::find` of a partition.
    Query,
    /// `LoadItem::batch_get`.
    BatchGet,
    /// `LoadItem::batch_write` of puts.
    BatchWrite,
}

impl OpKind {
    /// Its name in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            OpKind::Get => "get",
            OpKind::Put => "put",
            OpKind::Query => "query",
            OpKind::BatchGet => "batch_get",
            OpKind::BatchWrite => "batch_write",
        }
    }
}

/// What a worker needs to pick and send operations; shared by every worker.
#[derive(Debug)]
pub(crate) struct Driver {
    /// The client the run measures (with its cache, if any).
    pub(crate) db: Client,
    /// The workload.
    workload: Workload,
    /// Mix: the share of gets.
    read_ratio: f64,
    /// Batch: keys or items per call.
    batch_size: usize,
    /// Items per partition.
    partition_size: u64,
    /// Payload bytes per item written.
    payload_bytes: usize,
    /// Item numbers, `0..key_count`.
    items: KeyDist,
    /// Partition numbers, for queries.
    partitions: KeyDist,
    /// Whether find results may come from the cache.
    cached_queries: bool,
}

impl Driver {
    /// A driver for `config` sending through `db`.
    pub(crate) fn new(db: Client, config: &Config) -> Self {
        let partitions = config.key_count.div_ceil(config.partition_size);
        let dist = |n| match config.keys {
            KeyChoice::Uniform => KeyDist::uniform(n),
            KeyChoice::Zipf { s } => KeyDist::zipf(n, s),
        };
        Driver {
            db,
            workload: config.workload,
            read_ratio: config.read_ratio,
            batch_size: config.batch_size,
            partition_size: config.partition_size,
            payload_bytes: config.payload_bytes,
            items: dist(config.key_count),
            partitions: dist(partitions),
            cached_queries: config.cache != crate::args::CacheMode::None,
        }
    }

    /// The kind of a worker's `seq`-th operation.
    pub(crate) fn next_op(&self, seq: u64, rng: &mut fastrand::Rng) -> OpKind {
        match self.workload {
            Workload::Get => OpKind::Get,
            Workload::Put => OpKind::Put,
            Workload::Query => OpKind::Query,
            Workload::Batch if seq.is_multiple_of(2) => OpKind::BatchGet,
            Workload::Batch => OpKind::BatchWrite,
            Workload::Mix if rng.f64() < self.read_ratio => OpKind::Get,
            Workload::Mix => OpKind::Put,
        }
    }

    /// Sends one operation of kind `op` on keys drawn from `rng`.
    pub(crate) async fn execute(
        &self,
        op: OpKind,
        rng: &mut fastrand::Rng,
    ) -> Result<(), dynamite::Error> {
        match op {
            OpKind::Get => {
                let key = self.key(self.items.sample(rng));
                LoadItem::get(&self.db, key).await.map(drop)
            }
            OpKind::Put => self.item(self.items.sample(rng), rng).put(&self.db).await,
            OpKind::Query => self.query(rng).await,
            OpKind::BatchGet => {
                let keys: Vec<_> = (0..self.batch_size)
                    .map(|_| self.key(self.items.sample(rng)))
                    .collect();
                LoadItem::batch_get(&self.db, keys).await.map(drop)
            }
            OpKind::BatchWrite => {
                let items: Vec<LoadItem> = (0..self.batch_size)
                    .map(|_| self.item(self.items.sample(rng), rng))
                    .collect();
                LoadItem::batch_write(&self.db)
                    .put_all(&items)
                    .await
                    .map(drop)
            }
        }
    }

    /// A find of one whole partition.
    async fn query(&self, rng: &mut fastrand::Rng) -> Result<(), dynamite::Error> {
        let partition = self.partitions.sample(rng);
        let find = LoadItem::find(&self.db)
            .filter(LoadItem::PK.eq(partition_key(partition)))
            .limit(self.partition_size as usize);
        let find = if self.cached_queries {
            find.cached()
        } else {
            find
        };
        find.all().await.map(drop)
    }

    /// The key of item number `n`.
    fn key(&self, n: u64) -> dynamite::Key<LoadItem> {
        let (pk, sk) = item_key(n, self.partition_size);
        LoadItem::key(pk, sk)
    }

    /// A new version of item number `n`.
    fn item(&self, n: u64, rng: &mut fastrand::Rng) -> LoadItem {
        new_item(n, self.partition_size, self.payload_bytes, 1, rng)
    }
}

/// The partition key of partition `p`.
fn partition_key(p: u64) -> String {
    format!("p{p}")
}

/// The key of item number `n` with `partition_size` items per partition.
pub(crate) fn item_key(n: u64, partition_size: u64) -> (String, u64) {
    (partition_key(n / partition_size), n % partition_size)
}

/// Item number `n` with a fresh payload.
fn new_item(
    n: u64,
    partition_size: u64,
    payload_bytes: usize,
    writes: u64,
    rng: &mut fastrand::Rng,
) -> LoadItem {
    let (pk, sk) = item_key(n, partition_size);
    LoadItem {
        pk,
        sk,
        payload: std::iter::repeat_with(|| rng.alphanumeric())
            .take(payload_bytes)
            .collect(),
        writes,
        updated_at: now_ms(),
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Items written per `batch_write` call while seeding (the library splits them into requests
/// of 25 and sends several at once).
const SEED_CHUNK: u64 = 1000;

/// Writes items `0..config.key_count` with `batch_write`, calling `progress` with the number
/// written so far after each chunk; stops early when it returns `false`. How many were
/// written.
pub(crate) async fn seed(
    db: &Client,
    config: &Config,
    rng: &mut fastrand::Rng,
    mut progress: impl FnMut(u64) -> bool,
) -> Result<u64, dynamite::Error> {
    let mut written = 0;
    while written < config.key_count {
        let end = (written + SEED_CHUNK).min(config.key_count);
        let items: Vec<LoadItem> = (written..end)
            .map(|n| new_item(n, config.partition_size, config.payload_bytes, 0, rng))
            .collect();
        LoadItem::batch_write(db).put_all(&items).await?;
        written = end;
        if !progress(written) {
            break;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_fill_partitions_in_order() {
        assert_eq!(item_key(0, 10), ("p0".to_owned(), 0));
        assert_eq!(item_key(9, 10), ("p0".to_owned(), 9));
        assert_eq!(item_key(10, 10), ("p1".to_owned(), 0));
        assert_eq!(item_key(12_345, 1), ("p12345".to_owned(), 0));
    }

    #[test]
    fn items_carry_the_payload_size() {
        let mut rng = fastrand::Rng::with_seed(1);
        let item = new_item(25, 10, 300, 1, &mut rng);
        assert_eq!((item.pk.as_str(), item.sk), ("p2", 5));
        assert_eq!(item.payload.len(), 300);
    }
}
