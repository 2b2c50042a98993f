//! What a find asks for, as data: the builder's setters fill a [`Spec`]; the planner
//! ([`super::plan`]), the renderer ([`super::render`]) and the reader ([`super::read`]) read it.
//! Every choice is an enum, so a find reads as what it is rather than as six flags.

use std::borrow::Cow;

use crate::attr::Path;
use crate::expr::condition::Node;
use crate::page::Cursor;
use crate::RetryPolicy;

/// Where a find may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `find()`: GetItem or a Query (on the table or an index); a find no key serves is an
    /// error, never a silent scan.
    Auto,
    /// `find().allow_scan()`: as `Auto`, falling back to a Scan when no key serves.
    AllowScan,
    /// `scan()`: always a Scan.
    Scan,
}

impl Source {
    /// A Scan is acceptable.
    pub(crate) fn allows_scan(self) -> bool {
        matches!(self, Source::AllowScan | Source::Scan)
    }
}

/// Read consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consistency {
    /// DynamoDB's default.
    Eventual,
    /// `.consistent()`: strongly consistent (table and local indexes only).
    Strong,
}

impl Consistency {
    pub(crate) fn is_strong(self) -> bool {
        self == Consistency::Strong
    }
}

/// Sort-key order of a Query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Ascending,
    /// `.descending()` (queries only).
    Descending,
}

/// How a fan-out's partitions are merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Merge {
    /// One partition after another, in the order listed.
    Partitions,
    /// `.sorted()`: by sort key across partitions (in the find's order).
    SortKey,
}

/// What each item is decoded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadAs {
    /// The entity: every attribute must be read (from the table when an index lacks some).
    Entity,
    /// `.project::<P>()`: a serde type, satisfied by what an index holds.
    Projection,
}

/// How far `all()` may read a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A scan needs a `limit()`.
    Limited,
    /// `.unbounded()` (or `first()`): to the end of the table.
    Unbounded,
}

/// Whether results go through the client's query cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CacheChoice {
    /// As the entity says (`cache(queries)`).
    EntityDefault,
    /// `.cached()`.
    Cached,
    /// `.no_cache()`.
    Bypass,
}

/// A find, as its builder describes it.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    /// Conditions, ANDed.
    pub(crate) filters: Vec<Node>,
    /// `.index(..)`: the index to read (else the planner picks).
    pub(crate) index: Option<Cow<'static, str>>,
    pub(crate) source: Source,
    pub(crate) consistency: Consistency,
    pub(crate) reach: Reach,
    /// `.select(..)`: attributes to read (empty: all).
    pub(crate) projection: Vec<Path>,
    pub(crate) read_as: ReadAs,
    /// At most this many matching items (the page size of `page()`).
    pub(crate) limit: Option<usize>,
    /// DynamoDB's `Limit`: items evaluated per request.
    pub(crate) page_size: Option<u32>,
    pub(crate) order: Order,
    /// Parallel scan segments.
    pub(crate) segments: Option<u32>,
    /// Requests run at once: scan segments, or a fan-out's Queries (defaults below).
    pub(crate) concurrency: Option<usize>,
    /// The most partitions a fan-out may read.
    pub(crate) max_fan_out: usize,
    /// How a fan-out's partitions are merged.
    pub(crate) merge: Merge,
    /// Where to resume.
    pub(crate) start: Option<Cursor>,
    /// Per-call retry policy.
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) cache: CacheChoice,
}

impl Spec {
    /// A find (`Source::Auto`) or a scan (`Source::Scan`) with no conditions yet.
    pub(crate) fn new(source: Source) -> Self {
        Spec {
            filters: Vec::new(),
            index: None,
            source,
            consistency: Consistency::Eventual,
            reach: Reach::Limited,
            projection: Vec::new(),
            read_as: ReadAs::Entity,
            limit: None,
            page_size: None,
            order: Order::Ascending,
            segments: None,
            concurrency: None,
            max_fan_out: crate::query::plan::DEFAULT_MAX_FAN_OUT,
            merge: Merge::Partitions,
            start: None,
            retry: None,
            cache: CacheChoice::EntityDefault,
        }
    }
}

impl Spec {
    /// Scan segments read at once (4 unless set).
    pub(crate) const SCAN_CONCURRENCY: usize = 4;
    /// A fan-out's Queries run at once (8 unless set).
    pub(crate) const FAN_OUT_CONCURRENCY: usize = 8;

    pub(crate) fn scan_concurrency(&self) -> usize {
        self.concurrency.unwrap_or(Self::SCAN_CONCURRENCY)
    }

    pub(crate) fn fan_out_concurrency(&self) -> usize {
        self.concurrency.unwrap_or(Self::FAN_OUT_CONCURRENCY)
    }
}
