//! `find()` and `scan()`: planned reads with exact limits, cursors, pages and streams.
//!
//! - [`spec`]: what a find asks for (filled by the [`Find`] builder's setters);
//! - [`plan`]: every decision, made before any request (which request, key condition and
//!   filter, checks, base-item fetch, what a cursor holds), with `explain()`'s [`Plan`];
//! - [`render`]: the expressions and placeholders a request needs, and the fingerprint;
//! - [`read`] and [`stream`]: execution (pages, limits, index then table reads, parallel
//!   scans, the query cache);
//! - [`fanout`]: a find over several partitions, one Query each, merged, with one cursor.

mod fanout;
pub mod plan;
mod read;
mod render;
mod spec;
mod stream;

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::{Stream, StreamExt, TryStreamExt};
use serde::de::DeserializeOwned;

use self::fanout::{FanOutFind, FanOutReader};
use self::plan::Plan;
use self::read::{RawReader, Reader};
use self::render::Prepared;
use self::spec::{CacheChoice, Consistency, Merge, Order, Reach, ReadAs, Source, Spec};
use self::stream::{Decoded, ReadAhead};
use crate::advice::{Pattern, Seen};
use crate::cache::stack::ClientCache;
use crate::page::{self, Cursor, Page};
use crate::RetryPolicy;
use crate::{Attr, Client, Condition, Entity, Error, IndexHandle, Item, Result};

/// Names an index: a string or a typed [`IndexHandle`].
pub trait IndexName<E> {
    /// The index name.
    fn index_name(self) -> Cow<'static, str>;
}
impl<E> IndexName<E> for &str {
    fn index_name(self) -> Cow<'static, str> {
        Cow::Owned(self.to_owned())
    }
}
impl<E> IndexName<E> for String {
    fn index_name(self) -> Cow<'static, str> {
        Cow::Owned(self)
    }
}
impl<E> IndexName<E> for IndexHandle<E> {
    fn index_name(self) -> Cow<'static, str> {
        Cow::Borrowed(self.name())
    }
}

/// A read of many items of `E`, planned onto GetItem, Query or Scan. Built by
/// [`Entity::find`] (never scans unless allowed) or [`Entity::scan`]. A condition listing
/// several values of a partition key (`is_in`, or an OR of equalities) runs as one Query per
/// value, merged ([`sorted`](Self::sorted), [`concurrency`](Self::concurrency),
/// [`max_fan_out`](Self::max_fan_out)), with one cursor for all of them.
///
/// `O` is what each item is read as: the entity itself, or a projection type
/// ([`project`](Self::project)).
///
/// ```no_run
/// # use dynamite::Entity;
/// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
/// # #[dynamite(table = "users")]
/// # #[dynamite(global_index(name = "StatusIndex"))]
/// # struct User { #[dynamite(partition_key)] id: String,
/// #   #[dynamite(index_key(index = "StatusIndex", partition))] status: String,
/// #   #[dynamite(index_key(index = "StatusIndex", sort))] created_at: i64, name: String }
/// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
/// let recent: Vec<User> = User::find(db)
///     .filter(User::STATUS.eq("active"))
///     .filter(User::CREATED_AT.between(1_000, 2_000))
///     .limit(50)
///     .all()
///     .await?;
/// println!("{}", User::find(db).filter(User::STATUS.eq("active")).explain()?);
/// # Ok(()) }
/// ```
#[must_use = "a Find does nothing until run"]
pub struct Find<'a, E: Entity, O = E> {
    client: &'a Client,
    spec: Spec,
    decode: fn(Item) -> Result<O>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity, O> std::fmt::Debug for Find<'_, E, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Find")
            .field("entity", &E::schema().entity)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

fn decode_entity<E: Entity>(item: Item) -> Result<E> {
    E::from_item(item)
}

fn decode_serde<E: Entity, P: DeserializeOwned>(item: Item) -> Result<P> {
    serde_dynamo::from_item(item).map_err(|e| Error::Conversion {
        entity: format!(
            "{} projection {}",
            E::schema().entity,
            std::any::type_name::<P>()
        ),
        attribute: "(item)".to_owned(),
        reason: e.to_string(),
    })
}

impl<'a, E: Entity> Find<'a, E, E> {
    pub(crate) fn new(client: &'a Client, scan: bool) -> Self {
        Find {
            client,
            spec: Spec::new(if scan { Source::Scan } else { Source::Auto }),
            decode: decode_entity::<E>,
            _entity: PhantomData,
        }
    }

    /// Read each item as `P` (any serde type) instead of the whole entity: typically the
    /// attributes a keys-only or include-projected index holds, so no base-table read is
    /// needed. Combine with [`select`](Self::select) to read only what `P` needs.
    pub fn project<P: DeserializeOwned + Send + 'static>(self) -> Find<'a, E, P> {
        Find {
            client: self.client,
            spec: Spec {
                read_as: ReadAs::Projection,
                ..self.spec
            },
            decode: decode_serde::<E, P>,
            _entity: PhantomData,
        }
    }
}

impl<'a, E: Entity, O: Send + 'static> Find<'a, E, O> {
    /// Adds a condition (ANDed with the others). Conditions on key attributes become the key
    /// condition where the planner can use them; the rest filter.
    pub fn filter(mut self, condition: Condition<E>) -> Self {
        condition.node.flatten_and(&mut self.spec.filters);
        self
    }

    /// Reads this index (a name or a typed handle like `User::STATUS_INDEX`). An unknown index,
    /// or one whose partition key has no equality condition, is an error before any request.
    pub fn index(mut self, index: impl IndexName<E>) -> Self {
        self.spec.index = Some(index.index_name());
        self
    }

    /// Strongly consistent reads (not available on global secondary indexes).
    pub fn consistent(mut self) -> Self {
        self.spec.consistency = Consistency::Strong;
        self
    }

    /// Lets the planner fall back to a Scan when no key condition covers the conditions.
    pub fn allow_scan(mut self) -> Self {
        if self.spec.source == Source::Auto {
            self.spec.source = Source::AllowScan;
        }
        self
    }

    /// Lets [`all`](Self::all) read a scan with no limit to the end.
    pub fn unbounded(mut self) -> Self {
        self.spec.reach = Reach::Unbounded;
        self
    }

    /// Reads only these attributes (nested paths allowed). Key attributes are always read too
    /// (cursors are built from them).
    pub fn select<T>(mut self, attrs: impl IntoIterator<Item = Attr<E, T>>) -> Self {
        self.spec
            .projection
            .extend(attrs.into_iter().map(|a| a.path()));
        self
    }

    /// Adds one attribute of any type to the projection.
    pub fn select_attr<T>(mut self, attr: Attr<E, T>) -> Self {
        self.spec.projection.push(attr.path());
        self
    }

    /// At most `n` matching items: with a filter, pages are read until `n` items matched or
    /// the data ends. For [`page`](Self::page), the page size.
    pub fn limit(mut self, n: usize) -> Self {
        self.spec.limit = Some(n);
        self
    }

    /// How many items DynamoDB evaluates per request (its `Limit`); by default, as many as fit
    /// in 1 MB when there is a filter, and just the number still wanted when there is none.
    pub fn page_size(mut self, n: u32) -> Self {
        self.spec.page_size = Some(n.max(1));
        self
    }

    /// Sort-key order descending (queries only).
    pub fn descending(mut self) -> Self {
        self.spec.order = Order::Descending;
        self
    }

    /// Starts after the item the cursor points at (for [`all`](Self::all), [`stream`](Self::stream)
    /// and [`pages`](Self::pages); [`page`](Self::page) takes the cursor directly).
    ///
    /// The cursor is checked before any request: a cursor of another query, a malformed,
    /// altered or forged one (its key must be exactly this query's key attributes, of their
    /// types and within DynamoDB's limits), and an empty one are [`Error::InvalidCursor`].
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.spec.start = Some(cursor);
        self
    }

    /// Parallel scan in `n` segments (scans only), merged into one stream.
    pub fn segments(mut self, n: u32) -> Self {
        self.spec.segments = Some(n.max(1));
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.spec.retry = Some(policy);
        self
    }

    /// How many requests run at once: the segments of a parallel scan (default 4), or the
    /// Queries of a fan-out over several partitions (default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.spec.concurrency = Some(n.max(1));
        self
    }

    /// Merges the partitions of a fan-out by sort key (a k-way merge: ascending, or with
    /// [`descending`](Self::descending) highest first; ties in the order the partitions were
    /// listed) instead of one partition after another. A Query of one partition is in sort-key
    /// order already; a scan has no order, so there it is an error.
    ///
    /// ```no_run
    /// # use dynamite::Entity;
    /// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize)]
    /// # #[dynamite(table = "orders")]
    /// # struct Order { #[dynamite(partition_key)] customer_id: String,
    /// #   #[dynamite(sort_key)] placed_at: i64, total: i64 }
    /// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
    /// // The 20 latest orders of three customers: three Queries, merged newest first.
    /// let latest: Vec<Order> = Order::find(db)
    ///     .filter(Order::CUSTOMER_ID.is_in(["c1", "c2", "c3"]))
    ///     .sorted()
    ///     .descending()
    ///     .limit(20)
    ///     .all()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sorted(mut self) -> Self {
        self.spec.merge = Merge::SortKey;
        self
    }

    /// The most partitions a fan-out may read (default
    /// [`DEFAULT_MAX_FAN_OUT`](plan::DEFAULT_MAX_FAN_OUT), 100): a condition listing more
    /// values of a partition key is an error before any request.
    pub fn max_fan_out(mut self, n: usize) -> Self {
        self.spec.max_fan_out = n.max(1);
        self
    }

    /// Reads query results through the client's cache (when it has one), whatever the
    /// entity's setting. Writes through the client to the table drop them.
    pub fn cached(mut self) -> Self {
        self.spec.cache = CacheChoice::Cached;
        self
    }

    /// Reads DynamoDB, not the query cache, whatever the entity's setting.
    pub fn no_cache(mut self) -> Self {
        self.spec.cache = CacheChoice::Bypass;
        self
    }

    /// The plan this find would run, with no request sent.
    pub fn explain(&self) -> Result<Plan> {
        Ok(match self.prepare()? {
            Prepare::One(prepared) => prepared.plan.clone(),
            Prepare::FanOut(find) => find.plan.clone(),
        })
    }

    /// Records a find refused for want of a key with the index advisor.
    fn advise_refused(&self, error: &Error) {
        if !matches!(error, Error::ScanRequired { .. }) {
            return;
        }
        let schema = E::schema();
        let table = self.client.full_table_name(schema.table);
        let pattern = Pattern::new(
            schema,
            &table,
            Seen::Refused,
            &self.spec.filters,
            &self.spec.projection,
        );
        self.client.advisor().refused(&pattern, || {
            let conditions = render::describe(&self.spec.filters).unwrap_or_default();
            format!("find [{conditions}] refused: no key serves it (ScanRequired)")
        });
    }

    fn prepare(&self) -> Result<Prepare> {
        let schema = E::schema();
        let decisions = plan::decide(schema, &self.spec)?;
        let table = self.client.table_name(schema.table);
        if decisions.planned.fan_out.is_some() {
            let find = fanout::prepare(schema, &self.spec, decisions, &table)?;
            return Ok(Prepare::FanOut(Arc::new(find)));
        }
        render::prepare(schema, &self.spec, decisions, table).map(|p| Prepare::One(Arc::new(p)))
    }

    /// Plans and renders the find, and checks its cursor, before any request.
    fn reader(&self) -> Result<Ready<'a, O>> {
        let prepared: Arc<Prepared> =
            match self.prepare().inspect_err(|e| self.advise_refused(e))? {
                Prepare::One(prepared) => prepared,
                Prepare::FanOut(find) => return self.fan_out_reader(find).map(Ready::FanOut),
            };
        let start = match &self.spec.start {
            Some(cursor) => Some(page::decode(
                cursor,
                &prepared.fingerprint,
                &prepared.cursor,
                self.client.cursor_key(),
            )?),
            None => None,
        };
        Ok(Ready::One(Reader {
            raw: RawReader {
                client: self.client,
                prepared,
                page_size: self.spec.page_size,
                start,
                retry: self.spec.retry.clone(),
            },
            decode: self.decode,
        }))
    }

    fn fan_out_reader(&self, find: Arc<FanOutFind>) -> Result<FanOutReader<'a>> {
        let starts = match &self.spec.start {
            Some(cursor) => FanOutReader::decode_cursor(self.client, &find, cursor)?,
            None => vec![page::LanePosition::Start; find.lanes.len()],
        };
        Ok(FanOutReader {
            client: self.client,
            find,
            schema: E::schema(),
            starts,
            page_size: self.spec.page_size,
            retry: self.spec.retry.clone(),
            cache: self.query_cache(),
        })
    }

    fn decode_all(&self, raw: Vec<Item>) -> Result<Vec<O>> {
        raw.into_iter().map(self.decode).collect()
    }

    /// The client's query cache, when this find's results go through it.
    fn query_cache(&self) -> Option<&'a ClientCache> {
        let opted_in = match self.spec.cache {
            CacheChoice::Cached => true,
            CacheChoice::Bypass => false,
            CacheChoice::EntityDefault => E::schema().cache.is_some_and(|c| c.queries),
        };
        // Parallel scans are not cached: each segment is its own read.
        self.client.read_cache(
            E::schema(),
            self.spec.consistency.is_strong(),
            opted_in && self.spec.segments.is_none(),
        )
    }

    /// Every matching item (up to the limit). Refuses a scan with no limit unless
    /// [`unbounded`](Self::unbounded) was called.
    pub async fn all(self) -> Result<Vec<O>> {
        let reader = match self.reader()? {
            Ready::One(reader) => reader,
            Ready::FanOut(fan_out) => {
                let raw = fan_out.all(self.spec.limit).await?;
                return self.decode_all(raw);
            }
        };
        let raw = reader
            .raw
            .all(self.query_cache(), E::schema(), &self.spec)
            .await?;
        reader.decode_all(raw)
    }

    /// The first matching item.
    pub async fn first(mut self) -> Result<Option<O>> {
        self.spec.limit = Some(1);
        self.spec.reach = Reach::Unbounded;
        Ok(self.all().await?.into_iter().next())
    }

    /// One page: up to `limit` items (without a limit, one DynamoDB page with at least one
    /// item, or the end), starting after `cursor` (`None`: from the start). `next` resumes
    /// exactly after the last item returned.
    ///
    /// The cursor is checked as [`after`](Self::after) says, before any request. An empty
    /// cursor string is [`Error::InvalidCursor`] (`"empty cursor"`), not the first page: pass
    /// `None` for that, so that a loop feeding back a lost or blank cursor fails instead of
    /// restarting forever.
    pub async fn page(mut self, cursor: impl Into<Option<Cursor>>) -> Result<Page<O>> {
        if let Some(c) = cursor.into() {
            self.spec.start = Some(c);
        }
        if self.spec.segments.is_some() {
            return Err(Error::InvalidQuery {
                entity: E::schema().entity,
                reason: "page() cursors are not available for parallel scans; use stream()"
                    .to_owned(),
            });
        }
        let reader = match self.reader()? {
            Ready::One(reader) => reader,
            Ready::FanOut(fan_out) => {
                let (raw, next) = fan_out.page(self.spec.limit).await?;
                return Ok(Page {
                    items: self.decode_all(raw)?,
                    next,
                });
            }
        };
        let (raw, next) = reader
            .raw
            .page(self.query_cache(), E::schema(), &self.spec)
            .await?;
        Ok(Page {
            items: reader.decode_all(raw)?,
            next: next.map(|key| reader.raw.cursor(&key)),
        })
    }

    /// The matching items as a stream, read a page at a time with one page of read-ahead.
    /// Dropping the stream stops reading. The stream ends after an error: a failed request (in
    /// a parallel scan, that segment's) or an item that cannot be decoded.
    pub fn stream(self) -> impl Stream<Item = Result<O>> + Send + 'a {
        let raw = match self.reader() {
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            Ok(Ready::FanOut(fan_out)) => fan_out.stream(self.spec.limit),
            Ok(Ready::One(reader)) => match self.spec.segments {
                Some(n) => reader
                    .raw
                    .parallel(n, self.spec.scan_concurrency(), self.spec.limit),
                None => ReadAhead::new(reader.raw, None, self.spec.limit).boxed(),
            },
        };
        Decoded::new(raw, self.decode)
    }

    /// The matching items page by page (each page as [`page`](Self::page) returns it).
    pub fn pages(self) -> impl Stream<Item = Result<Page<O>>> + Send + 'a {
        // For pages(), the limit is the page size; the stream runs to the end of the data.
        let page_limit = self.spec.limit;
        let reader = match self.reader() {
            Ok(Ready::One(r)) => Arc::new(r),
            Ok(Ready::FanOut(fan_out)) => {
                let decode = self.decode;
                return fan_out
                    .pages(page_limit)
                    .map(move |page| {
                        let (raw, next) = page?;
                        let items = raw.into_iter().map(decode).collect::<Result<_>>()?;
                        Ok(Page { items, next })
                    })
                    .boxed();
            }
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let state = (reader.raw.start.clone(), false);
        futures::stream::unfold(state, move |(start, done)| {
            let reader = reader.clone();
            async move {
                if done {
                    return None;
                }
                match reader
                    .read(start, page_limit, None, page_limit.is_none())
                    .await
                {
                    Ok((items, next)) => {
                        let page = Page {
                            next: next.as_ref().map(|k| reader.raw.cursor(k)),
                            items,
                        };
                        let done = next.is_none();
                        Some((Ok(page), (next, done)))
                    }
                    Err(e) => Some((Err(e), (None, true))),
                }
            }
        })
        .boxed()
    }

    /// Runs several finds, at most `concurrency` at once, and returns their results in the
    /// order given: for finds that differ in more than a partition value (other conditions,
    /// indexes or limits), where a fan-out does not apply. The first error is returned, and
    /// the finds still running are dropped.
    ///
    /// ```no_run
    /// # use dynamite::Entity;
    /// # use dynamite::ops::Find;
    /// # #[derive(dynamite::Entity, serde::Serialize, serde::Deserialize, Debug)]
    /// # #[dynamite(table = "orders")]
    /// # struct Order { #[dynamite(partition_key)] customer_id: String,
    /// #   #[dynamite(sort_key)] placed_at: i64, total: i64 }
    /// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
    /// let finds = vec![
    ///     Order::find(db).filter(Order::CUSTOMER_ID.eq("c1")).limit(5),
    ///     Order::find(db).filter(Order::CUSTOMER_ID.eq("c2")).filter(Order::TOTAL.gt(100)),
    /// ];
    /// let [recent_c1, large_c2]: [Vec<Order>; 2] = Find::all_of(finds, 8)
    ///     .await?
    ///     .try_into()
    ///     .expect("two finds, two results");
    /// # Ok(()) }
    /// ```
    pub async fn all_of(
        finds: impl IntoIterator<Item = Self>,
        concurrency: usize,
    ) -> Result<Vec<Vec<O>>> {
        futures::stream::iter(finds.into_iter().map(Find::all))
            .buffered(concurrency.max(1))
            .try_collect()
            .await
    }

    /// How many items match (DynamoDB `Select: COUNT`, filter-aware; capped at the limit).
    pub async fn count(self) -> Result<usize> {
        match self.reader()? {
            Ready::One(reader) => reader.raw.count(self.spec.limit).await,
            Ready::FanOut(fan_out) => fan_out.count(self.spec.limit).await,
        }
    }
}

/// A find after planning: one read, or one per partition.
enum Prepare {
    One(Arc<Prepared>),
    FanOut(Arc<FanOutFind>),
}

/// A find ready to run, its cursor checked.
enum Ready<'a, O> {
    One(Reader<'a, O>),
    FanOut(FanOutReader<'a>),
}
