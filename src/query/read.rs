//! Runs a prepared find: one request (GetItem, Query or Scan), pages read to a limit with
//! exact resumption, full items fetched from the table after an index read, parallel scan
//! segments, and the query cache in front of it all.

use std::future::Future;
use std::sync::Arc;

use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity, Select};
use futures::stream::BoxStream;
use futures::StreamExt;

use super::render::Prepared;
use super::spec::{Reach, Spec};
use super::stream::ReadAhead;
use crate::advice::ReadFigures;
use crate::batch::TableRead;
use crate::cache::stack::ClientCache;
use crate::page::{self, Cursor};
use crate::pipeline::Target;
use crate::{Client, Error, Item, Operation, Result, RetryPolicy, TableSchema};

/// Decoded items and the key to resume after.
pub(crate) type PageRead<O> = (Vec<O>, Option<Item>);

/// The settings Query and Scan requests share (their SDK builders are distinct types with the
/// same setters).
macro_rules! read_settings {
    ($builder:expr, $p:expr, $start:expr, $limit:expr, $count:expr) => {
        $builder
            .table_name(&$p.table)
            .set_index_name($p.index.map(str::to_owned))
            .set_filter_expression($p.filter.clone())
            .set_projection_expression(if $count { None } else { $p.projection.clone() })
            .set_expression_attribute_names(if $count {
                $p.condition_names.clone()
            } else {
                $p.names.clone()
            })
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

pub(crate) struct RawPage {
    pub(crate) items: Vec<Item>,
    pub(crate) last_key: Option<Item>,
    pub(crate) count: usize,
}

/// Executes a prepared find, up to the raw items: everything about a read but decoding. Not
/// generic, so its request paths are compiled once, not once per entity or output type.
#[derive(Clone)]
pub(crate) struct RawReader<'a> {
    pub(crate) client: &'a Client,
    pub(crate) prepared: Arc<Prepared>,
    pub(crate) page_size: Option<u32>,
    /// Where the read resumes (the decoded cursor).
    pub(crate) start: Option<Item>,
    pub(crate) retry: Option<RetryPolicy>,
}

/// A [`RawReader`] and how its items are decoded into `O`.
pub(crate) struct Reader<'a, O> {
    pub(crate) raw: RawReader<'a>,
    pub(crate) decode: fn(Item) -> Result<O>,
}

impl<'a, O> Clone for Reader<'a, O> {
    fn clone(&self) -> Self {
        Reader {
            raw: self.raw.clone(),
            decode: self.decode,
        }
    }
}

impl<'a, O: Send + 'static> Reader<'a, O> {
    /// Reads from `start` until `want` items matched (or one page with at least one item when
    /// `one_page`), or the data ends. Returns the decoded items and the key to resume after.
    pub(crate) async fn read(
        &self,
        start: Option<Item>,
        want: Option<usize>,
        segment: Option<(i32, i32)>,
        one_page: bool,
    ) -> Result<PageRead<O>> {
        let (raw, resume) = self.raw.read_raw(start, want, segment, one_page).await?;
        Ok((self.decode_all(raw)?, resume))
    }

    pub(crate) fn decode_all(&self, raw: Vec<Item>) -> Result<Vec<O>> {
        let mut out = Vec::with_capacity(raw.len());
        for item in raw {
            out.push((self.decode)(item)?);
        }
        Ok(out)
    }
}

impl<'a> RawReader<'a> {
    /// [`Find::all`](super::Find::all) up to decoding: every matching item (up to the
    /// limit), through the query cache `cache` when there is one. Refuses a scan with no limit
    /// unless the find is unbounded.
    pub(crate) async fn all(
        &self,
        cache: Option<&ClientCache>,
        schema: &'static TableSchema,
        spec: &Spec,
    ) -> Result<Vec<Item>> {
        if self.prepared.plan.operation == Operation::Scan
            && spec.limit.is_none()
            && spec.reach == Reach::Limited
        {
            return Err(Error::InvalidQuery {
                entity: schema.entity,
                reason:
                    "all() over a scan needs a limit(); call unbounded() to read the whole table"
                        .to_owned(),
            });
        }
        let limit = spec.limit;
        if let Some(n) = spec.segments {
            let stream = self.clone().parallel(n, spec.scan_concurrency(), limit);
            return stream.collect::<Vec<_>>().await.into_iter().collect();
        }
        let read = self.read_to_end(self.start.clone(), limit);
        let limits = (limit, spec.page_size);
        let start = self.start.as_ref();
        let (raw, _) = self
            .through_cache(cache, schema, "all", limits, start, read)
            .await?;
        Ok(raw)
    }

    /// [`Find::page`](super::Find::page) up to decoding: the raw items and the key to resume
    /// after, through the query cache `cache` when there is one.
    pub(crate) async fn page(
        &self,
        cache: Option<&ClientCache>,
        schema: &'static TableSchema,
        spec: &Spec,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let limit = spec.limit;
        let read = self.read_raw(self.start.clone(), limit, None, limit.is_none());
        let limits = (limit, spec.page_size);
        let start = self.start.as_ref();
        self.through_cache(cache, schema, "page", limits, start, read)
            .await
    }

    /// [`Find::count`](super::Find::count): matching items counted page by page, capped at
    /// `limit`.
    pub(crate) async fn count(&self, limit: Option<usize>) -> Result<usize> {
        let mut total = 0usize;
        let mut start = self.start.clone();
        loop {
            let page = self.fetch(start, None, None, true).await?;
            total += page.count;
            if let Some(n) = limit.filter(|&n| total >= n) {
                return Ok(n);
            }
            match page.last_key {
                Some(k) => start = Some(k),
                None => return Ok(total),
            }
        }
    }

    pub(crate) fn cursor(&self, key: &Item) -> Cursor {
        page::encode(&self.prepared.fingerprint, key, self.client.cursor_key())
    }

    /// Serves `read` from the query cache `cache` (keyed by the query's fingerprint, how it is
    /// read (`how`), where it starts and its limits), or runs it and caches the result.
    /// Without a cache, runs it.
    pub(crate) async fn through_cache(
        &self,
        cache: Option<&ClientCache>,
        schema: &'static TableSchema,
        how: &str,
        limits: (Option<usize>, Option<u32>),
        start: Option<&Item>,
        read: impl Future<Output = Result<(Vec<Item>, Option<Item>)>>,
    ) -> Result<(Vec<Item>, Option<Item>)> {
        let Some(cache) = cache else {
            return read.await;
        };
        let start = start.map(crate::key::encode_item_key).unwrap_or_default();
        let query = format!(
            "{}|{how}|{:?}|{:?}|{}",
            self.prepared.fingerprint,
            limits.0,
            limits.1,
            page::fingerprint(&start)
        );
        let partition = self.prepared.partition.as_ref();
        let key = cache.query_key(&self.prepared.table, schema, &query, partition);
        // Boxed: the read is a whole paginated read path, too large to nest again.
        let read = Box::pin(read);
        let started = crate::metrics::clock();
        let (page, hit) = cache.get_page(schema, key, || read).await?;
        let labels = crate::metrics::RequestLabels {
            operation: self.prepared.plan.operation,
            table: &self.prepared.table,
            entity: schema.entity,
        };
        let stats = self.client.stats_registry();
        stats.cache_lookup(labels, hit, started);
        Ok(page)
    }

    /// Tells the index advisor what a request of a scan or filtered query read.
    fn advise(&self, scanned: i32, returned: i32, consumed: Option<&ConsumedCapacity>) {
        let p = &*self.prepared;
        let Some(pattern) = &p.pattern else {
            return;
        };
        let figures = ReadFigures {
            items_read: scanned.max(0) as u64,
            items_returned: returned.max(0) as u64,
            consumed_capacity: consumed
                .and_then(ConsumedCapacity::capacity_units)
                .unwrap_or(0.0),
        };
        let example = || p.plan.to_string();
        self.client.advisor().read(pattern, figures, example);
    }

    /// One request.
    pub(crate) async fn fetch(
        &self,
        start: Option<Item>,
        limit: Option<i32>,
        segment: Option<(i32, i32)>,
        count: bool,
    ) -> Result<RawPage> {
        let p = &*self.prepared;
        let target = Target::safe(p.plan.operation, &p.table, p.entity, self.retry.as_ref())
            .with_plan(&p.plan);
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
                self.advise(out.scanned_count, out.count, out.consumed_capacity());
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
                self.advise(out.scanned_count, out.count, out.consumed_capacity());
                Ok(raw_page!(out))
            }
            other => unreachable!("the planner plans GetItem, Query or Scan, not {other}"),
        }
    }

    /// [`Reader::read`] before decoding: the raw items (full items when the index does
    /// not hold them) and the key to resume after.
    pub(crate) async fn read_raw(
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
    pub(crate) async fn read_to_end(
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

    /// The key attributes of an item: where a cursor resumes. Full items read after an index
    /// read hold them too (the table read projects every key attribute of the find).
    pub(crate) fn key_of(&self, item: &Item) -> Item {
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
    pub(crate) fn parallel(
        self,
        n: u32,
        concurrency: usize,
        limit: Option<usize>,
    ) -> BoxStream<'a, Result<Item>> {
        let streams = (0..n).map(move |segment| {
            ReadAhead::new(self.clone(), Some((segment as i32, n as i32)), None)
        });
        let merged = futures::stream::iter(streams).flatten_unordered(concurrency);
        match limit {
            Some(l) => merged.take(l).boxed(),
            None => merged.boxed(),
        }
    }
}
