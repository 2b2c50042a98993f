//! `find()` and `scan()`: planned reads with exact limits, cursors, pages and streams.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity, Select};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;

use super::batch_get::TableRead;
use crate::attr::Path;
use crate::expr::condition::{Cmp, Node};
use crate::expr::{self, Placeholders};
use crate::page::{self, Cursor, Page};
use crate::pipeline::Target;
use crate::plan::{self, Plan, PlanInput, Planned};
use crate::Operation;
use crate::{
    Attr, Client, Condition, Entity, Error, IndexHandle, IndexKind, Item, Result, RetryPolicy,
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
/// Decoded items and the key to resume after.
type PageRead<O> = (Vec<O>, Option<Item>);
/// A projection expression with its attribute names.
type Projected = (Option<String>, Option<HashMap<String, String>>);

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
/// [`Entity::find`] (never scans unless allowed) or [`Entity::scan`].
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
    filters: Vec<Node>,
    index: Option<Cow<'static, str>>,
    consistent: bool,
    scan: bool,
    allow_scan: bool,
    unbounded: bool,
    projection: Vec<Path>,
    limit: Option<usize>,
    page_size: Option<u32>,
    descending: bool,
    segments: Option<u32>,
    concurrency: usize,
    start: Option<Cursor>,
    decode: fn(Item) -> Result<O>,
    projected: bool,
    retry: Option<RetryPolicy>,
    cache_queries: Option<bool>,
    _entity: PhantomData<fn() -> E>,
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
            filters: Vec::new(),
            index: None,
            consistent: false,
            scan,
            allow_scan: scan,
            unbounded: false,
            projection: Vec::new(),
            limit: None,
            page_size: None,
            descending: false,
            segments: None,
            concurrency: 4,
            start: None,
            decode: decode_entity::<E>,
            projected: false,
            retry: None,
            cache_queries: None,
            _entity: PhantomData,
        }
    }

    /// Read each item as `P` (any serde type) instead of the whole entity: typically the
    /// attributes a keys-only or include-projected index holds, so no base-table read is
    /// needed. Combine with [`select`](Self::select) to read only what `P` needs.
    pub fn project<P: DeserializeOwned + Send + 'static>(self) -> Find<'a, E, P> {
        Find {
            client: self.client,
            filters: self.filters,
            index: self.index,
            consistent: self.consistent,
            scan: self.scan,
            allow_scan: self.allow_scan,
            unbounded: self.unbounded,
            projection: self.projection,
            limit: self.limit,
            page_size: self.page_size,
            descending: self.descending,
            segments: self.segments,
            concurrency: self.concurrency,
            start: self.start,
            decode: decode_serde::<E, P>,
            projected: true,
            retry: self.retry,
            cache_queries: self.cache_queries,
            _entity: PhantomData,
        }
    }
}

impl<'a, E: Entity, O: Send + 'static> Find<'a, E, O> {
    /// Adds a condition (ANDed with the others). Conditions on key attributes become the key
    /// condition where the planner can use them; the rest filter.
    pub fn filter(mut self, condition: Condition<E>) -> Self {
        condition.node.flatten_and(&mut self.filters);
        self
    }

    /// Reads this index (a name or a typed handle like `User::STATUS_INDEX`). An unknown index,
    /// or one whose partition key has no equality condition, is an error before any request.
    pub fn index(mut self, index: impl IndexName<E>) -> Self {
        self.index = Some(index.index_name());
        self
    }

    /// Strongly consistent reads (not available on global secondary indexes).
    pub fn consistent(mut self) -> Self {
        self.consistent = true;
        self
    }

    /// Lets the planner fall back to a Scan when no key condition covers the conditions.
    pub fn allow_scan(mut self) -> Self {
        self.allow_scan = true;
        self
    }

    /// Lets [`all`](Self::all) read a scan with no limit to the end.
    pub fn unbounded(mut self) -> Self {
        self.unbounded = true;
        self
    }

    /// Reads only these attributes (nested paths allowed). Key attributes are always read too
    /// (cursors are built from them).
    pub fn select<T>(mut self, attrs: impl IntoIterator<Item = Attr<E, T>>) -> Self {
        self.projection.extend(attrs.into_iter().map(|a| a.path()));
        self
    }

    /// Adds one attribute of any type to the projection.
    pub fn select_attr<T>(mut self, attr: Attr<E, T>) -> Self {
        self.projection.push(attr.path());
        self
    }

    /// At most `n` matching items: with a filter, pages are read until `n` items matched or
    /// the data ends. For [`page`](Self::page), the page size.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// How many items DynamoDB evaluates per request (its `Limit`); by default, as many as fit
    /// in 1 MB when there is a filter, and just the number still wanted when there is none.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n.max(1));
        self
    }

    /// Sort-key order descending (queries only).
    pub fn descending(mut self) -> Self {
        self.descending = true;
        self
    }

    /// Starts after the item the cursor points at (for [`all`](Self::all), [`stream`](Self::stream)
    /// and [`pages`](Self::pages); [`page`](Self::page) takes the cursor directly).
    ///
    /// The cursor is checked before any request: a cursor of another query, a malformed,
    /// altered or forged one (its key must be exactly this query's key attributes, of their
    /// types and within DynamoDB's limits), and an empty one are [`Error::InvalidCursor`].
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.start = Some(cursor);
        self
    }

    /// Parallel scan in `n` segments (scans only), merged into one stream.
    pub fn segments(mut self, n: u32) -> Self {
        self.segments = Some(n.max(1));
        self
    }

    /// Retries this call with `policy` instead of the client's.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// How many segments of a parallel scan are read at once (default 4).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    fn planned(&self) -> Result<Planned> {
        plan::plan::<E>(&PlanInput {
            filters: &self.filters,
            index: self.index.as_deref(),
            consistent: self.consistent,
            scan: self.scan,
            allow_scan: self.allow_scan,
        })
    }

    /// The plan this find would run, with no request sent.
    pub fn explain(&self) -> Result<Plan> {
        Ok(self.prepare()?.plan)
    }

    fn prepare(&self) -> Result<Prepared> {
        let schema = E::schema();
        if self.limit == Some(0) {
            return Err(Error::validation(
                schema.entity,
                "limit",
                "limit(0) asks for no items; use a limit of at least 1",
            ));
        }
        let planned = self.planned()?;
        check_key_operands(schema.entity, &planned.key_nodes)?;
        if self.segments.is_some() && planned.operation != Operation::Scan {
            return Err(Error::InvalidQuery {
                entity: schema.entity,
                reason: format!(
                    "segments() is for scans, but this find plans a {}",
                    planned.operation
                ),
            });
        }
        if self.descending && planned.operation == Operation::Scan {
            return Err(Error::InvalidQuery {
                entity: schema.entity,
                reason: "descending() orders by sort key, which a scan does not".to_owned(),
            });
        }
        if let Some(index) = planned.index {
            // A global index only holds its projection: a filter on anything else would
            // silently match nothing.
            if index.kind == IndexKind::Global {
                let mut paths = Vec::new();
                planned
                    .filter_nodes
                    .iter()
                    .for_each(|n| n.paths(&mut paths));
                let roots: Vec<String> = paths.iter().map(|p| p.root().to_owned()).collect();
                if !plan::index_holds(schema, index, Some(&roots)) {
                    let missing: Vec<&str> = roots
                        .iter()
                        .map(String::as_str)
                        .filter(|r| !plan::index_holds(schema, index, Some(&[r.to_string()])))
                        .collect();
                    return Err(Error::InvalidQuery {
                        entity: schema.entity,
                        reason: format!(
                            "the filter reads {} which global index `{}` does not project",
                            missing.join(", "),
                            index.name
                        ),
                    });
                }
            }
        }

        // The attributes that locate an item in the source: table keys, plus the index keys.
        let mut key_attrs: Vec<&'static str> = vec![schema.partition_key.name];
        key_attrs.extend(schema.sort_key.map(|k| k.name));
        if let Some(index) = planned.index {
            for k in std::iter::once(index.partition_key).chain(index.sort_key) {
                if !key_attrs.contains(&k.name) {
                    key_attrs.push(k.name);
                }
            }
        }

        let selected: Option<Vec<String>> = (!self.projection.is_empty()).then(|| {
            self.projection
                .iter()
                .map(|p| p.root().to_owned())
                .collect()
        });
        // An index holds only its projection. Whole entities (or a selection the index does
        // not hold) are read again from the table. A projection type without a selection reads
        // what the index holds.
        let fetch_base = match planned.index {
            Some(index) if planned.operation != Operation::GetItem => {
                if self.projected && selected.is_none() {
                    false
                } else {
                    !plan::index_holds(schema, index, selected.as_deref())
                }
            }
            _ => false,
        };

        let mut ph = Placeholders::default();
        let render = |ph: &mut Placeholders, nodes: &[Node], sep: &str| -> Result<Option<String>> {
            if nodes.is_empty() {
                return Ok(None);
            }
            let parts = nodes
                .iter()
                .map(|n| {
                    n.render_into(ph)
                        .map_err(|(path, e)| Error::validation(schema.entity, path.to_string(), e))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(Some(if parts.len() == 1 {
                parts.into_iter().next().expect("one")
            } else {
                parts
                    .iter()
                    .map(|p| format!("({p})"))
                    .collect::<Vec<_>>()
                    .join(sep)
            }))
        };
        let key_condition = if planned.operation == Operation::Query {
            // KeyConditionExpression takes no parentheses.
            let parts = planned
                .key_nodes
                .iter()
                .map(|n| {
                    n.render_into(&mut ph)
                        .map_err(|(path, e)| Error::validation(schema.entity, path.to_string(), e))
                })
                .collect::<Result<Vec<_>>>()?;
            Some(parts.join(" AND "))
        } else {
            None
        };
        let filter = render(&mut ph, &planned.filter_nodes, " AND ")?;

        // What to read from the source: when base items are fetched, only the keys; else the
        // selection plus the keys.
        let mut read_paths: Vec<Path> = Vec::new();
        if fetch_base {
            read_paths.extend(key_attrs.iter().map(|k| Attr::<E, ()>::new(k).path()));
        } else if !self.projection.is_empty() {
            read_paths = expr::with_keys(&self.projection, &key_attrs);
        }
        let projection = expr::projection(&mut ph, &read_paths);
        let base_projection = if fetch_base && !self.projection.is_empty() {
            let mut bph = Placeholders::default();
            let paths = expr::with_keys(&self.projection, &schema.primary_key_names());
            let expr = expr::projection(&mut bph, &paths);
            Some((expr, bph.names()))
        } else {
            None
        };

        let table = self.client.table_name(schema.table);
        let describe = |nodes: &[Node]| {
            (!nodes.is_empty()).then(|| {
                nodes
                    .iter()
                    .map(Node::describe)
                    .collect::<Vec<_>>()
                    .join(" AND ")
            })
        };
        let plan = Plan {
            operation: planned.operation,
            index: planned.index.map(|i| i.name),
            key_condition: describe(&planned.key_nodes),
            filter: describe(&planned.filter_nodes),
            projection: (!self.projection.is_empty())
                .then(|| self.projection.iter().map(|p| p.to_string()).collect()),
            fetches_base_items: fetch_base,
            reason: planned.reason.clone(),
        };
        // A Query's partition key value: the one value a cursor of it can hold there.
        let cursor_partition = (planned.operation == Operation::Query)
            .then(|| {
                let pk = planned
                    .index
                    .map_or(schema.partition_key.name, |i| i.partition_key.name);
                planned.key_nodes.iter().find_map(|n| match n {
                    Node::Compare(p, Cmp::Eq, Ok(v)) if p.root() == pk => Some((pk, v.clone())),
                    _ => None,
                })
            })
            .flatten();
        let get_key = (planned.operation == Operation::GetItem).then(|| {
            planned
                .key_nodes
                .iter()
                .filter_map(|n| match n {
                    Node::Compare(p, _, Ok(v)) => Some((p.root().to_owned(), v.clone())),
                    _ => None,
                })
                .collect::<Item>()
        });
        // What the query is, exactly as sent: the expressions with their placeholders resolved
        // through the name and value maps (so a nested path `m.c` and an attribute named "m.c"
        // differ), the key of a GetItem in the canonical key encoding, and how it is read.
        let (names, values) = (ph.names(), ph.values());
        let sorted_names: Option<BTreeMap<&String, &String>> =
            names.as_ref().map(|m| m.iter().collect());
        let sorted_values: Option<BTreeMap<&String, &AttributeValue>> =
            values.as_ref().map(|m| m.iter().collect());
        let normalised = format!(
            "{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{:?}|{}|{}",
            schema.entity,
            table,
            plan.operation,
            plan.index,
            key_condition,
            filter,
            projection,
            sorted_names,
            sorted_values,
            get_key.as_ref().map(crate::key::encode_item_key),
            self.descending,
            self.segments,
            self.projected,
            fetch_base,
        );
        Ok(Prepared {
            fingerprint: page::fingerprint(&normalised),
            plan,
            table,
            entity: schema.entity,
            index: planned.index.map(|i| i.name),
            key_condition,
            filter,
            projection,
            names,
            values,
            fetch_base,
            base_projection,
            key_attrs,
            cursor: page::CursorCheck {
                shape: page::key_shape(schema, planned.index),
                partition: cursor_partition,
            },
            table_keys: [
                Some(schema.partition_key.name),
                schema.sort_key.map(|k| k.name),
            ]
            .into_iter()
            .flatten()
            .collect(),
            get_key,
            consistent: self.consistent,
            descending: self.descending,
            has_filter: !planned.filter_nodes.is_empty(),
        })
    }

    fn reader(&self) -> Result<Reader<'a, O>> {
        let prepared = Arc::new(self.prepare()?);
        let start = match &self.start {
            Some(cursor) => Some(page::decode(
                cursor,
                &prepared.fingerprint,
                &prepared.cursor,
                self.client.cursor_key(),
            )?),
            None => None,
        };
        Ok(Reader {
            client: self.client,
            prepared,
            decode: self.decode,
            page_size: self.page_size,
            start,
            retry: self.retry.clone(),
        })
    }

    /// Every matching item (up to the limit). Refuses a scan with no limit unless
    /// [`unbounded`](Self::unbounded) was called.
    pub async fn all(self) -> Result<Vec<O>> {
        let reader = self.reader()?;
        if reader.prepared.plan.operation == Operation::Scan
            && self.limit.is_none()
            && !self.unbounded
        {
            return Err(Error::InvalidQuery {
                entity: E::schema().entity,
                reason:
                    "all() over a scan needs a limit(); call unbounded() to read the whole table"
                        .to_owned(),
            });
        }
        if let Some(n) = self.segments {
            let stream = reader.parallel(n, self.concurrency, self.limit);
            return stream.collect::<Vec<_>>().await.into_iter().collect();
        }
        let start = reader.start.clone();
        let limit = self.limit;
        let (raw, _) = self
            .through_cache(&reader, "all", reader.read_to_end(start, limit))
            .await?;
        reader.decode_all(raw)
    }

    /// Whether this find's results go through the client's query cache.
    fn query_cache(&self) -> Option<&'a crate::cache::stack::ClientCache> {
        let schema = E::schema();
        let opted_in = self
            .cache_queries
            .unwrap_or_else(|| schema.cache.is_some_and(|c| c.queries));
        // Parallel scans are not cached: each segment is its own read.
        self.client
            .read_cache::<E>(self.consistent, opted_in && self.segments.is_none())
    }

    /// Serves `read` from the query cache when this find uses it (keyed by the query's
    /// fingerprint, how it is read, its start and its limits), or runs it and caches the result.
    async fn through_cache(
        &self,
        reader: &Reader<'a, O>,
        how: &str,
        read: impl Future<Output = Result<(Vec<Item>, Option<Item>)>>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let Some(cache) = self.query_cache() else {
            return read.await;
        };
        let schema = E::schema();
        let start = reader
            .start
            .as_ref()
            .map(|k| {
                let mut parts: Vec<String> = k.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
                parts.sort();
                parts.join("&")
            })
            .unwrap_or_default();
        let query = format!(
            "{}|{how}|{:?}|{:?}|{}",
            reader.prepared.fingerprint,
            self.limit,
            self.page_size,
            crate::page::fingerprint(&start)
        );
        let key = cache.query_key(&reader.prepared.table, schema, &query);
        // Boxed: the read is a whole paginated read path, too large to nest again.
        let read = Box::pin(read);
        cache.get_page(schema, key, || read).await
    }

    /// Reads query results through the client's cache (when it has one), whatever the
    /// entity's setting. Writes through the client to the table drop them.
    pub fn cached(mut self) -> Self {
        self.cache_queries = Some(true);
        self
    }

    /// Reads DynamoDB, not the query cache, whatever the entity's setting.
    pub fn no_cache(mut self) -> Self {
        self.cache_queries = Some(false);
        self
    }

    /// The first matching item.
    pub async fn first(mut self) -> Result<Option<O>> {
        self.limit = Some(1);
        self.unbounded = true;
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
    pub async fn page(self, cursor: impl Into<Option<Cursor>>) -> Result<Page<O>> {
        let mut this = self;
        if let Some(c) = cursor.into() {
            this.start = Some(c);
        }
        if this.segments.is_some() {
            return Err(Error::InvalidQuery {
                entity: E::schema().entity,
                reason: "page() cursors are not available for parallel scans; use stream()"
                    .to_owned(),
            });
        }
        let reader = this.reader()?;
        let (raw, next) = this
            .through_cache(
                &reader,
                "page",
                reader.read_raw(reader.start.clone(), this.limit, None, this.limit.is_none()),
            )
            .await?;
        Ok(Page {
            items: reader.decode_all(raw)?,
            next: next.map(|key| reader.cursor(&key)),
        })
    }

    /// The matching items as a stream, read a page at a time with one page of read-ahead.
    /// Dropping the stream stops reading.
    pub fn stream(self) -> impl Stream<Item = Result<O>> + Send + 'a {
        match self.reader() {
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            Ok(reader) => match self.segments {
                Some(n) => reader.parallel(n, self.concurrency, self.limit).boxed(),
                None => ReadAhead::new(reader, None, self.limit).boxed(),
            },
        }
    }

    /// The matching items page by page (each page as [`page`](Self::page) returns it).
    pub fn pages(self) -> impl Stream<Item = Result<Page<O>>> + Send + 'a {
        // For pages(), the limit is the page size; the stream runs to the end of the data.
        let limit: Option<usize> = None;
        let page_limit = self.limit;
        let reader = match self.reader() {
            Ok(r) => Arc::new(r),
            Err(e) => return futures::stream::once(async move { Err(e) }).boxed(),
        };
        let state = (reader.start.clone(), false, limit);
        futures::stream::unfold(state, move |(start, done, remaining)| {
            let reader = reader.clone();
            async move {
                if done || remaining == Some(0) {
                    return None;
                }
                let want = match (remaining, page_limit) {
                    (Some(r), Some(p)) => Some(r.min(p)),
                    (r, p) => r.or(p),
                };
                match reader.read(start, want, None, want.is_none()).await {
                    Ok((items, next)) => {
                        let remaining = remaining.map(|r| r - items.len().min(r));
                        let page = Page {
                            next: next.as_ref().map(|k| reader.cursor(k)),
                            items,
                        };
                        let done = next.is_none();
                        Some((Ok(page), (next, done, remaining)))
                    }
                    Err(e) => Some((Err(e), (None, true, remaining))),
                }
            }
        })
        .boxed()
    }

    /// How many items match (DynamoDB `Select: COUNT`, filter-aware; capped at the limit).
    pub async fn count(self) -> Result<usize> {
        let reader = self.reader()?;
        let mut total = 0usize;
        let mut start = reader.start.clone();
        loop {
            let page = reader.fetch(start, None, None, true).await?;
            total += page.count;
            if self.limit.is_some_and(|n| total >= n) {
                return Ok(self.limit.unwrap_or(total));
            }
            match page.last_key {
                Some(k) => start = Some(k),
                None => return Ok(total),
            }
        }
    }
}

/// A find after planning and rendering: everything a request needs.
struct Prepared {
    plan: Plan,
    fingerprint: String,
    table: String,
    entity: &'static str,
    index: Option<&'static str>,
    key_condition: Option<String>,
    filter: Option<String>,
    projection: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
    fetch_base: bool,
    base_projection: Option<Projected>,
    key_attrs: Vec<&'static str>,
    /// What a cursor of this find holds (the same attributes as `key_attrs`), for checking
    /// cursors before any request.
    cursor: page::CursorCheck,
    table_keys: Vec<&'static str>,
    get_key: Option<Item>,
    consistent: bool,
    descending: bool,
    has_filter: bool,
}

/// The settings Query and Scan requests share (their SDK builders are distinct types with the
/// same setters).
macro_rules! read_settings {
    ($builder:expr, $p:expr, $start:expr, $limit:expr, $count:expr) => {
        $builder
            .table_name(&$p.table)
            .set_index_name($p.index.map(str::to_owned))
            .set_filter_expression($p.filter.clone())
            .set_projection_expression(if $count { None } else { $p.projection.clone() })
            .set_expression_attribute_names(names_for($p, $count))
            .set_expression_attribute_values($p.values.clone())
            .set_exclusive_start_key($start.clone())
            .set_limit($limit)
            .set_select($count.then_some(Select::Count))
            .consistent_read($p.consistent)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
    };
}

/// A Query or Scan output as a page.
macro_rules! raw_page {
    ($out:expr) => {
        RawPage {
            count: $out.count as usize,
            items: $out.items.unwrap_or_default(),
            last_key: $out.last_evaluated_key.filter(|k| !k.is_empty()),
        }
    };
}

struct RawPage {
    items: Vec<Item>,
    last_key: Option<Item>,
    count: usize,
}

/// Executes a prepared find.
struct Reader<'a, O> {
    client: &'a Client,
    prepared: Arc<Prepared>,
    decode: fn(Item) -> Result<O>,
    page_size: Option<u32>,
    start: Option<Item>,
    retry: Option<RetryPolicy>,
}

impl<'a, O> Clone for Reader<'a, O> {
    fn clone(&self) -> Self {
        Reader {
            client: self.client,
            prepared: self.prepared.clone(),
            decode: self.decode,
            page_size: self.page_size,
            start: self.start.clone(),
            retry: self.retry.clone(),
        }
    }
}

impl<'a, O: Send + 'static> Reader<'a, O> {
    fn cursor(&self, key: &Item) -> Cursor {
        page::encode(&self.prepared.fingerprint, key, self.client.cursor_key())
    }

    /// One request.
    async fn fetch(
        &self,
        start: Option<Item>,
        limit: Option<i32>,
        segment: Option<(i32, i32)>,
        count: bool,
    ) -> Result<RawPage> {
        let p = &*self.prepared;
        let target = Target::safe(p.plan.operation, &p.table, p.entity, self.retry.as_ref());
        let sdk = self.client.sdk();
        match p.plan.operation {
            Operation::GetItem => {
                if start.is_some() {
                    // The one item was returned already.
                    return Ok(RawPage {
                        items: Vec::new(),
                        last_key: None,
                        count: 0,
                    });
                }
                let out = self
                    .client
                    .execute(target, || {
                        sdk.get_item()
                            .table_name(&p.table)
                            .set_key(p.get_key.clone())
                            .consistent_read(p.consistent)
                            .set_projection_expression(p.projection.clone())
                            .set_expression_attribute_names(
                                p.projection.as_ref().and(p.names.clone()),
                            )
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .send()
                    })
                    .await?;
                let items: Vec<Item> = out.item.into_iter().collect();
                Ok(RawPage {
                    count: items.len(),
                    items,
                    last_key: None,
                })
            }
            Operation::Query => {
                let out = self
                    .client
                    .execute(target, || {
                        read_settings!(sdk.query(), p, start, limit, count)
                            .set_key_condition_expression(p.key_condition.clone())
                            .scan_index_forward(!p.descending)
                            .send()
                    })
                    .await?;
                Ok(raw_page!(out))
            }
            Operation::Scan => {
                let out = self
                    .client
                    .execute(target, || {
                        read_settings!(sdk.scan(), p, start, limit, count)
                            .set_segment(segment.map(|s| s.0))
                            .set_total_segments(segment.map(|s| s.1))
                            .send()
                    })
                    .await?;
                Ok(raw_page!(out))
            }
            other => unreachable!("the planner plans GetItem, Query or Scan, not {other}"),
        }
    }

    /// Reads from `start` until `want` items matched (or one page with at least one item when
    /// `one_page`), or the data ends. Returns the decoded items and the key to resume after.
    async fn read(
        &self,
        start: Option<Item>,
        want: Option<usize>,
        segment: Option<(i32, i32)>,
        one_page: bool,
    ) -> Result<PageRead<O>> {
        let (raw, resume) = self.read_raw(start, want, segment, one_page).await?;
        Ok((self.decode_all(raw)?, resume))
    }

    fn decode_all(&self, raw: Vec<Item>) -> Result<Vec<O>> {
        raw.into_iter().map(self.decode).collect()
    }

    /// [`read`](Self::read) before decoding: the raw items (full items when the index does
    /// not hold them) and the key to resume after.
    async fn read_raw(
        &self,
        mut start: Option<Item>,
        want: Option<usize>,
        segment: Option<(i32, i32)>,
        one_page: bool,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut raw: Vec<Item> = Vec::new();
        let resume = loop {
            let still = want.map(|w| w - raw.len());
            let limit = match (self.page_size, self.prepared.has_filter, still) {
                (Some(size), _, _) => Some(size as i32),
                (None, false, Some(n)) => Some(n.min(i32::MAX as usize) as i32),
                _ => None,
            };
            let page = self.fetch(start.take(), limit, segment, false).await?;
            let page_len = page.items.len();
            let mut cut = None;
            for (i, item) in page.items.into_iter().enumerate() {
                raw.push(item);
                if want == Some(raw.len()) {
                    cut = Some(i + 1 == page_len);
                    break;
                }
            }
            match cut {
                // The limit was reached: resume after the last item returned, unless that was
                // the very last item of the data.
                Some(last_of_page) => {
                    break if last_of_page && page.last_key.is_none() {
                        None
                    } else {
                        Some(self.key_of(raw.last().expect("limit reached")))
                    };
                }
                None => match page.last_key {
                    None => break None,
                    Some(k) if one_page && !raw.is_empty() => break Some(k),
                    Some(k) => start = Some(k),
                },
            }
        };
        let raw = if self.prepared.fetch_base {
            self.fetch_base_items(raw).await?
        } else {
            raw
        };
        Ok((raw, resume))
    }

    /// Reads from `start` to the limit or the end (for `all()`).
    async fn read_to_end(
        &self,
        mut start: Option<Item>,
        limit: Option<usize>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let mut out = Vec::new();
        loop {
            let want = limit.map(|n| n - out.len());
            if want == Some(0) {
                return Ok((out, None));
            }
            let (items, next) = self.read_raw(start, want, None, false).await?;
            out.extend(items);
            match next {
                Some(key) => start = Some(key),
                None => return Ok((out, None)),
            }
        }
    }

    /// The key attributes of an item: where a cursor resumes.
    fn key_of(&self, item: &Item) -> Item {
        self.prepared
            .key_attrs
            .iter()
            .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
            .collect()
    }

    /// Reads the full items for index items (one BatchGetItem per 100 keys, through the batch
    /// read path: unprocessed keys retried with the retry policy), in order; items deleted in
    /// between are skipped.
    async fn fetch_base_items(&self, index_items: Vec<Item>) -> Result<Vec<Item>> {
        let p = &*self.prepared;
        let keys: Vec<Item> = index_items
            .iter()
            .map(|item| {
                p.table_keys
                    .iter()
                    .filter_map(|k| item.get(*k).map(|v| ((*k).to_owned(), v.clone())))
                    .collect()
            })
            .collect();
        let (projection, names) = p.base_projection.clone().unwrap_or((None, None));
        let read = TableRead {
            table: p.table.clone(),
            entity: p.entity,
            key_names: p.table_keys.clone(),
            projection,
            names,
            // `.consistent()` holds for every read a find makes (a consistent find can only be
            // on the table or a local index).
            consistent: p.consistent,
            retry: self.retry.as_ref(),
        };
        // Bypasses the item cache on purpose: these reads are part of the find, whose results
        // the query cache holds when the entity or the call asks for it.
        let (found, _) = read.read_all(self.client, keys, 4).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// `n` scan segments merged into one stream, `concurrency` read at a time.
    fn parallel(
        self,
        n: u32,
        concurrency: usize,
        limit: Option<usize>,
    ) -> impl Stream<Item = Result<O>> + Send + 'a {
        let streams = (0..n).map(move |segment| {
            let reader = self.clone();
            ReadAhead::new(reader, Some((segment as i32, n as i32)), None)
        });
        let merged = futures::stream::iter(streams).flatten_unordered(concurrency);
        match limit {
            Some(l) => merged.take(l).boxed(),
            None => merged.boxed(),
        }
    }
}

fn names_for(p: &Prepared, count: bool) -> Option<HashMap<String, String>> {
    // DynamoDB rejects names that no expression uses: without the projection (count), keep
    // only the names the key condition and filter use.
    let names = p.names.clone()?;
    if !count || p.projection.is_none() {
        return Some(names);
    }
    let used = |n: &String| {
        [&p.key_condition, &p.filter]
            .iter()
            .filter_map(|e| e.as_deref())
            .any(|e| {
                e.split(|c: char| !(c.is_alphanumeric() || c == '#'))
                    .any(|tok| tok == n)
            })
    };
    let kept: HashMap<String, String> = names.into_iter().filter(|(k, _)| used(k)).collect();
    (!kept.is_empty()).then_some(kept)
}

/// A stream of items read page by page, with the next page requested as soon as the current
/// one arrives (one page of read-ahead). Dropping it drops the in-flight request.
struct ReadAhead<'a, O> {
    buffer: VecDeque<O>,
    in_flight: Option<BoxFuture<'a, Result<PageRead<O>>>>,
    reader: Reader<'a, O>,
    segment: Option<(i32, i32)>,
    remaining: Option<usize>,
}

impl<'a, O: Send + 'static> ReadAhead<'a, O> {
    fn new(reader: Reader<'a, O>, segment: Option<(i32, i32)>, limit: Option<usize>) -> Self {
        let start = reader.start.clone();
        let mut this = ReadAhead {
            buffer: VecDeque::new(),
            in_flight: None,
            reader,
            segment,
            remaining: limit,
        };
        if limit != Some(0) {
            this.in_flight = Some(this.request(start));
        }
        this
    }

    fn request(&self, start: Option<Item>) -> BoxFuture<'a, Result<PageRead<O>>> {
        let reader = self.reader.clone();
        let segment = self.segment;
        let want = self.remaining;
        Box::pin(async move { reader.read(start, want, segment, true).await })
    }
}

// No field is structurally pinned (the request future is boxed), so moving it is fine.
impl<O> Unpin for ReadAhead<'_, O> {}

impl<'a, O: Send + 'static> Stream for ReadAhead<'a, O> {
    type Item = Result<O>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(fut) = this.in_flight.as_mut() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(Ok((items, next))) => {
                        this.in_flight = None;
                        let n = items.len();
                        this.buffer.extend(items);
                        this.remaining = this.remaining.map(|r| r.saturating_sub(n));
                        if let Some(next) = next {
                            if this.remaining != Some(0) {
                                this.in_flight = Some(this.request(Some(next)));
                                continue; // poll the new request once so it starts
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        this.in_flight = None;
                        this.buffer.clear();
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => {}
                }
            }
            if let Some(item) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            return if this.in_flight.is_none() {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
    }
}

/// Key conditions compare key attributes, and DynamoDB refuses empty strings and binaries as
/// key values: refused here, before sending, naming the attribute.
fn check_key_operands(entity: &'static str, nodes: &[Node]) -> Result<()> {
    for node in nodes {
        let operands: Vec<(&Path, &Result<AttributeValue, crate::value::ConvertError>)> = match node
        {
            Node::Compare(path, _, value) | Node::BeginsWith(path, value) => {
                vec![(path, value)]
            }
            Node::Between(path, low, high) => vec![(path, low), (path, high)],
            _ => Vec::new(),
        };
        for (path, value) in operands {
            let empty = match value {
                Ok(AttributeValue::S(s)) => s.is_empty(),
                Ok(AttributeValue::B(b)) => b.as_ref().is_empty(),
                _ => false,
            };
            if empty {
                return Err(Error::validation(
                    entity,
                    path.to_string(),
                    "a key condition compares a key attribute with an empty value; DynamoDB \
                     key values cannot be empty",
                ));
            }
        }
    }
    Ok(())
}
