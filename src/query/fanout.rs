//! Fan-out finds: a condition listing several values of a partition key (`pk.is_in([..])`,
//! or an OR of `pk = v`) runs as one Query per value, with bounded concurrency, merged into one
//! result in partition order or by sort key (a k-way merge), with exact limits and one cursor
//! for all partitions.
//!
//! Each partition is a *lane*: a find planned and rendered on its own (the listing condition
//! replaced by `pk = v`), so its key condition, filter, projection, base-item fetch, cursor
//! check and query-cache scope are those of a single-partition find. The [`Merger`] asks lanes
//! for pages and hands out items one by one; what it has handed out of each lane is where that
//! lane resumes, which the cursor records (see [`crate::page`]).
//!
//! Reads stay within the limit: in partition order, a lane is asked only for the items the
//! lanes before it may not supply (so later lanes are read ahead only while the limit is not
//! covered); merged by sort key, every lane must show its next item before one is handed out,
//! and each is asked for at most the items still wanted.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{BoxStream, FuturesUnordered};
use futures::StreamExt;

use super::plan::{self, Decisions, FanOut, FanOutPlan, MergeOrder, Plan};
use super::read::RawReader;
use super::render::{self, Prepared};
use super::spec::{Merge, Order, Spec};
use crate::attr::Path;
use crate::cache::stack::ClientCache;
use crate::expr::condition::{Cmp, Node};
use crate::page::{self, Cursor, LanePosition};
use crate::{Client, Error, Item, Result, RetryPolicy, TableSchema};

/// A fan-out find, planned and rendered: one prepared find per partition.
#[derive(Debug)]
pub(crate) struct FanOutFind {
    pub(crate) plan: Plan,
    /// Binds cursors to the whole fan-out (every lane's query, in order, and the merge order).
    pub(crate) fingerprint: String,
    pub(crate) lanes: Vec<Arc<Prepared>>,
    /// The sort key the merge orders by, and whether highest first; `None`: partition order.
    pub(crate) sort: Option<(&'static str, bool)>,
    pub(crate) concurrency: usize,
}

/// Prepares every lane of the fan-out the planner chose for `spec`.
pub(crate) fn prepare(
    schema: &'static TableSchema,
    spec: &Spec,
    decisions: Decisions,
    table: &str,
) -> Result<FanOutFind> {
    let planned = &decisions.planned;
    let fan_out = planned.fan_out.as_ref().expect("a fan-out plan");
    let descending = spec.order == Order::Descending;
    let sort = match spec.merge {
        Merge::Partitions => None,
        Merge::SortKey => {
            let key = planned.index.map_or(schema.sort_key, |i| i.sort_key);
            let key = key.ok_or_else(|| Error::InvalidQuery {
                entity: schema.entity,
                reason: format!(
                    "sorted() merges partitions by their sort key, but {} has none",
                    planned
                        .index
                        .map_or("the table".to_owned(), |i| format!("index `{}`", i.name))
                ),
            })?;
            Some((key.name, descending))
        }
    };
    let mut lanes = Vec::with_capacity(fan_out.values.len());
    for value in &fan_out.values {
        let lane = lane_spec(spec, fan_out, planned.index.map(|i| i.name), value);
        let lane_decisions = plan::decide(schema, &lane)?;
        lanes.push(Arc::new(render::prepare(
            schema,
            &lane,
            lane_decisions,
            table.to_owned(),
        )?));
    }
    let order = match sort {
        None => MergeOrder::Partitions,
        Some((_, false)) => MergeOrder::SortKeyAscending,
        Some((_, true)) => MergeOrder::SortKeyDescending,
    };
    let concurrency = spec.fan_out_concurrency();
    let mut plan = render::explain(spec, &decisions);
    plan.fan_out = Some(FanOutPlan {
        attribute: fan_out.attribute,
        partitions: lanes.len(),
        concurrency,
        order,
    });
    let lane_prints: Vec<&str> = lanes.iter().map(|l| l.fingerprint.as_str()).collect();
    let fingerprint = page::fingerprint(&format!("fan-out|{order:?}|{}", lane_prints.join("|")));
    Ok(FanOutFind {
        plan,
        fingerprint,
        lanes,
        sort,
        concurrency,
    })
}

/// The find of one partition: the listing condition replaced by `attribute = value`, on the
/// source the fan-out reads.
fn lane_spec(
    spec: &Spec,
    fan_out: &FanOut,
    index: Option<&'static str>,
    value: &aws_sdk_dynamodb::types::AttributeValue,
) -> Spec {
    let mut lane = spec.clone();
    lane.start = None;
    lane.merge = Merge::Partitions;
    lane.index = index.map(Cow::Borrowed);
    lane.filters[fan_out.position] =
        Node::Compare(Path::top(fan_out.attribute), Cmp::Eq, Ok(value.clone()));
    lane
}

/// Runs a [`FanOutFind`]: pages, all items, a stream, a count, cursors.
#[derive(Clone)]
pub(crate) struct FanOutReader<'a> {
    pub(crate) client: &'a Client,
    pub(crate) find: Arc<FanOutFind>,
    pub(crate) schema: &'static TableSchema,
    /// Where each lane starts (from the cursor, else every lane from its start).
    pub(crate) starts: Vec<LanePosition>,
    pub(crate) page_size: Option<u32>,
    pub(crate) retry: Option<RetryPolicy>,
    /// The query cache, when the find's results go through it (per lane: per partition).
    pub(crate) cache: Option<&'a ClientCache>,
}

impl<'a> FanOutReader<'a> {
    /// The lanes' positions from a fan-out cursor, checked before any request.
    pub(crate) fn decode_cursor(
        client: &Client,
        find: &FanOutFind,
        cursor: &Cursor,
    ) -> Result<Vec<LanePosition>> {
        let checks: Vec<_> = find.lanes.iter().map(|l| &l.cursor).collect();
        page::decode_lanes(cursor, &find.fingerprint, &checks, client.cursor_key())
    }

    fn lane_reader(&self, prepared: &Arc<Prepared>) -> RawReader<'a> {
        RawReader {
            client: self.client,
            prepared: prepared.clone(),
            page_size: self.page_size,
            start: None,
            retry: self.retry.clone(),
        }
    }

    /// A merger handing out at most `limit` items.
    pub(crate) fn merger(&self, limit: Option<usize>) -> Merger<'a> {
        let lanes = self
            .find
            .lanes
            .iter()
            .zip(&self.starts)
            .map(|(prepared, start)| Lane::new(self.lane_reader(prepared), start.clone()))
            .collect();
        Merger {
            lanes,
            in_flight: FuturesUnordered::new(),
            concurrency: self.find.concurrency,
            sort: self.find.sort,
            remaining: limit,
            current: 0,
            failed: false,
            cache: self.cache,
            schema: self.schema,
        }
    }

    /// Every matching item, up to `limit`.
    pub(crate) async fn all(&self, limit: Option<usize>) -> Result<Vec<Item>> {
        let mut merger = self.merger(limit);
        let mut out = Vec::new();
        while let Some(item) = merger.next_item().await {
            out.push(item?);
        }
        Ok(out)
    }

    /// One page: up to `limit` items (without a limit, what the requests made so far can
    /// place in order, at least one item unless the data ends), and the cursor after it.
    pub(crate) async fn page(&self, limit: Option<usize>) -> Result<(Vec<Item>, Option<Cursor>)> {
        let mut merger = self.merger(limit);
        let items = merger.next_page().await?;
        let next = merger.cursor(&self.find.fingerprint, self.client.cursor_key());
        Ok((items, next))
    }

    /// The items as a stream (ends after an error).
    pub(crate) fn stream(&self, limit: Option<usize>) -> BoxStream<'a, Result<Item>> {
        futures::stream::unfold(self.merger(limit), |mut merger| async move {
            merger.next_item().await.map(|item| (item, merger))
        })
        .boxed()
    }

    /// Pages of `limit` items (see [`page`](Self::page)), each with its cursor, to the end.
    pub(crate) fn pages(
        &self,
        limit: Option<usize>,
    ) -> BoxStream<'a, Result<(Vec<Item>, Option<Cursor>)>> {
        let fingerprint = self.find.fingerprint.clone();
        let secret = self.client.cursor_key().map(<[u8]>::to_vec);
        let this = self.clone();
        futures::stream::unfold(Some(this), move |state| {
            let fingerprint = fingerprint.clone();
            let secret = secret.clone();
            async move {
                let mut reader = state?;
                let mut merger = reader.merger(limit);
                match merger.next_page().await {
                    Ok(items) => {
                        let next = merger.cursor(&fingerprint, secret.as_deref());
                        let more = next.is_some().then(|| {
                            reader.starts = merger.positions();
                            reader
                        });
                        Some((Ok((items, next)), more))
                    }
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }

    /// How many items match across the partitions (each counted by its own Queries, up to
    /// `concurrency` at once), capped at `limit`.
    pub(crate) async fn count(&self, limit: Option<usize>) -> Result<usize> {
        let counts = self
            .find
            .lanes
            .iter()
            .zip(&self.starts)
            .filter_map(|(prepared, start)| {
                let mut reader = self.lane_reader(prepared);
                reader.start = match start {
                    LanePosition::Done => return None,
                    LanePosition::Start => None,
                    LanePosition::After(key) => Some(key.clone()),
                };
                Some(async move { reader.count(limit).await })
            });
        let mut counts = futures::stream::iter(counts).buffered(self.find.concurrency);
        let mut total = 0usize;
        while let Some(n) = counts.next().await {
            total += n?;
            if let Some(limit) = limit.filter(|&l| total >= l) {
                return Ok(limit);
            }
        }
        Ok(total)
    }
}

/// What a lane's next request starts from.
#[derive(Debug, Clone)]
enum Next {
    /// A request is due, from the start or after this key.
    From(Option<Item>),
    /// A request is running.
    Running,
    /// The partition has no more items to read.
    End,
}

/// One partition of a running fan-out.
struct Lane<'a> {
    reader: RawReader<'a>,
    /// Items read and not yet handed out, each with its position (its key attributes).
    buffer: VecDeque<(Item, Item)>,
    next: Next,
    /// After the last item handed out: where a cursor resumes this partition.
    position: LanePosition,
    /// Items the running request asked for (`None`: no limit).
    asked: Option<usize>,
}

impl<'a> Lane<'a> {
    fn new(reader: RawReader<'a>, start: LanePosition) -> Self {
        let next = match &start {
            LanePosition::Start => Next::From(None),
            LanePosition::After(key) => Next::From(Some(key.clone())),
            LanePosition::Done => Next::End,
        };
        Lane {
            reader,
            buffer: VecDeque::new(),
            next,
            position: start,
            asked: None,
        }
    }

    /// Nothing buffered and nothing more to read.
    fn exhausted(&self) -> bool {
        self.buffer.is_empty() && matches!(self.next, Next::End)
    }

    /// Nothing buffered, and a request is due.
    fn due(&self) -> bool {
        self.buffer.is_empty() && matches!(self.next, Next::From(_))
    }

    /// The sort-key value of the next item.
    fn head<'l>(&'l self, attribute: &str) -> Option<&'l aws_sdk_dynamodb::types::AttributeValue> {
        self.buffer.front().and_then(|(key, _)| key.get(attribute))
    }
}

/// A lane's answer: its index and the items of one page (with their positions) and the key
/// after them.
type LaneRead = (usize, Result<(Vec<Item>, Option<Item>)>);

/// What the merger does next.
enum Step {
    /// Hand out the next item of this lane.
    Emit(usize),
    /// A lane must be read before the next item is known.
    Read,
    /// Nothing more (the data or the limit ended).
    End,
}

/// Hands out a fan-out's items in order, reading lanes as needed (at most `concurrency`
/// requests at once). Dropping it drops the requests in flight.
pub(crate) struct Merger<'a> {
    lanes: Vec<Lane<'a>>,
    in_flight: FuturesUnordered<BoxFuture<'a, LaneRead>>,
    concurrency: usize,
    sort: Option<(&'static str, bool)>,
    /// Items still to hand out (`None`: no limit).
    remaining: Option<usize>,
    /// In partition order: the first lane not exhausted.
    current: usize,
    failed: bool,
    cache: Option<&'a ClientCache>,
    schema: &'static TableSchema,
}

impl<'a> Merger<'a> {
    /// The next item, reading lanes as needed; `None` at the end (or after an error).
    pub(crate) async fn next_item(&mut self) -> Option<Result<Item>> {
        loop {
            if self.failed {
                return None;
            }
            match self.step() {
                Step::Emit(lane) => return Some(Ok(self.emit(lane))),
                Step::End => return None,
                Step::Read => {
                    if let Err(e) = self.read().await {
                        self.failed = true;
                        return Some(Err(e));
                    }
                }
            }
        }
    }

    /// Items up to the limit; without one, those the requests made so far can place in order
    /// (at least one, unless the data ends).
    pub(crate) async fn next_page(&mut self) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        loop {
            match self.step() {
                Step::Emit(lane) => items.push(self.emit(lane)),
                Step::End => return Ok(items),
                Step::Read if self.remaining.is_none() && !items.is_empty() => return Ok(items),
                Step::Read => self.read().await?,
            }
        }
    }

    /// Each lane's position after the items handed out.
    pub(crate) fn positions(&self) -> Vec<LanePosition> {
        self.lanes
            .iter()
            .map(|lane| match (&lane.next, lane.buffer.is_empty()) {
                // Read to its end and all handed out.
                (Next::End, true) => LanePosition::Done,
                // All handed out, and what was read past them was filtered out.
                (Next::From(Some(key)), true) => LanePosition::After(key.clone()),
                _ => lane.position.clone(),
            })
            .collect()
    }

    /// The cursor after the items handed out; `None` when every lane is read to its end.
    pub(crate) fn cursor(&self, fingerprint: &str, secret: Option<&[u8]>) -> Option<Cursor> {
        let positions = self.positions();
        if positions.iter().all(|p| *p == LanePosition::Done) {
            return None;
        }
        Some(page::encode_lanes(fingerprint, &positions, secret))
    }

    fn step(&mut self) -> Step {
        if self.remaining == Some(0) {
            return Step::End;
        }
        match self.sort {
            None => {
                while self.lanes.get(self.current).is_some_and(Lane::exhausted) {
                    self.current += 1;
                }
                match self.lanes.get(self.current) {
                    None => Step::End,
                    Some(lane) if lane.buffer.is_empty() => Step::Read,
                    Some(_) => Step::Emit(self.current),
                }
            }
            Some((attribute, descending)) => {
                let mut best: Option<usize> = None;
                for (i, lane) in self.lanes.iter().enumerate() {
                    if lane.exhausted() {
                        continue;
                    }
                    if lane.buffer.is_empty() {
                        return Step::Read;
                    }
                    let better = best.is_none_or(|b| {
                        let order = match (lane.head(attribute), self.lanes[b].head(attribute)) {
                            (Some(x), Some(y)) => crate::key::compare_key_values(x, y),
                            _ => Ordering::Equal,
                        };
                        // Strictly: ties stay with the lane listed first.
                        order
                            == if descending {
                                Ordering::Greater
                            } else {
                                Ordering::Less
                            }
                    });
                    if better {
                        best = Some(i);
                    }
                }
                best.map_or(Step::End, Step::Emit)
            }
        }
    }

    fn emit(&mut self, lane: usize) -> Item {
        let lane = &mut self.lanes[lane];
        let (position, item) = lane.buffer.pop_front().expect("a buffered item");
        lane.position = LanePosition::After(position);
        if let Some(n) = &mut self.remaining {
            *n -= 1;
        }
        item
    }

    /// Starts the requests that are due (within the concurrency, and in partition order only
    /// as far as the limit may need), then waits for one answer.
    async fn read(&mut self) -> Result<()> {
        self.start_requests();
        let (lane, answer) = self
            .in_flight
            .next()
            .await
            .expect("a lane that must be read has a request running");
        let (items, resume) = answer?;
        let lane = &mut self.lanes[lane];
        lane.asked = None;
        lane.next = match resume {
            Some(key) => Next::From(Some(key)),
            None => Next::End,
        };
        let reader = &lane.reader;
        lane.buffer
            .extend(items.into_iter().map(|item| (reader.key_of(&item), item)));
        Ok(())
    }

    fn start_requests(&mut self) {
        let first = if self.sort.is_some() { 0 } else { self.current };
        // Items the lanes before the one considered may supply (partition order).
        let mut covered = 0usize;
        for i in first..self.lanes.len() {
            if self.in_flight.len() >= self.concurrency {
                break;
            }
            let want = match (self.sort, self.remaining) {
                (_, None) => None,
                (Some(_), Some(remaining)) => Some(remaining),
                (None, Some(remaining)) => {
                    if covered >= remaining {
                        break;
                    }
                    Some(remaining - covered)
                }
            };
            let lane = &self.lanes[i];
            if lane.due() {
                let start = match std::mem::replace(&mut self.lanes[i].next, Next::Running) {
                    Next::From(start) => start,
                    _ => unreachable!("a due lane has a start"),
                };
                self.lanes[i].asked = want;
                self.in_flight.push(self.request(i, start, want));
                covered = covered.saturating_add(want.unwrap_or(usize::MAX));
            } else {
                let running = lane.asked.filter(|_| matches!(lane.next, Next::Running));
                covered = covered.saturating_add(lane.buffer.len() + running.unwrap_or(0));
            }
        }
    }

    /// One page of lane `i`, through the query cache (scoped to the lane's partition) when
    /// there is one.
    fn request(
        &self,
        i: usize,
        start: Option<Item>,
        want: Option<usize>,
    ) -> BoxFuture<'a, LaneRead> {
        let reader = self.lanes[i].reader.clone();
        let (cache, schema) = (self.cache, self.schema);
        Box::pin(async move {
            let page_size = reader.page_size;
            let read = reader.read_raw(start.clone(), want, None, true);
            let answer = reader
                .through_cache(
                    cache,
                    schema,
                    "fan-out",
                    (want, page_size),
                    start.as_ref(),
                    read,
                )
                .await;
            (i, answer)
        })
    }
}
