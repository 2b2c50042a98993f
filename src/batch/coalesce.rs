//! Request coalescing: gets of one table that arrive while a request of theirs is in flight are
//! sent together, as one BatchGetItem.
//!
//! Gets are grouped by table, projection and read consistency. A get of an idle group is sent
//! at once by its own caller, as the GetItem it would have been (no delay, no task, no channel:
//! at low load nothing changes). Gets that arrive while a request of the group is in flight
//! wait, and go as one BatchGetItem of their distinct keys when that request ends, or at once
//! when [`MAX_KEYS_PER_REQUEST`] are waiting. A batch runs on a task of its own, so a caller
//! that stops waiting (its future dropped) takes nobody else's answer with it; a caller that
//! led a GetItem hands the group over when it ends or is dropped.
//!
//! Each caller gets what a GetItem would have given it: its item or `None` (matched by the
//! crate's canonical key text), or the failure of the request it was in. Unprocessed keys are
//! sent again by the pipeline's rules ([`TableRead::read_chunk`]); a key still unread when they
//! run out fails only its own caller ([`Error::UnprocessedKeys`] naming that key).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;
use tracing::Instrument;

use super::{TableRead, MAX_KEYS_PER_REQUEST};
use crate::key::{decode_key_values, item_key_text};
use crate::metrics;
use crate::{Client, Error, Item, Operation, Result, TableSchema};

/// Groups kept while idle, so that a steady stream of gets does not set one up every time.
const MAX_IDLE_GROUPS: usize = 64;

/// The gets in flight or waiting, per group.
pub(crate) struct Coalescer {
    groups: Mutex<HashMap<GroupKey, Group>>,
    /// Requests of a group in flight before further gets wait for a batch.
    max_in_flight: usize,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("groups", &self.lock().len())
            .finish()
    }
}

/// One get, as the coalescer takes it: its key checked already.
pub(crate) struct CoalescedGet<'r> {
    pub schema: &'static TableSchema,
    /// The table name, with its prefix.
    pub table: &'r str,
    pub key: Item,
    pub projection: Option<&'r str>,
    pub names: Option<&'r HashMap<String, String>>,
    pub consistent: bool,
}

/// Gets that can share a request: same table, projection and read consistency.
#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    table: String,
    consistent: bool,
    projection: Option<String>,
    /// The projection's placeholder names, sorted.
    names: Vec<(String, String)>,
}

impl GroupKey {
    fn of(get: &CoalescedGet<'_>) -> Self {
        let mut names: Vec<(String, String)> = get
            .names
            .map(|n| n.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        names.sort_unstable();
        GroupKey {
            table: get.table.to_owned(),
            consistent: get.consistent,
            projection: get.projection.map(str::to_owned),
            names,
        }
    }
}

/// A group: how many of its requests are in flight, and the gets waiting for the next one.
struct Group {
    in_flight: usize,
    waiting: Vec<Waiter>,
    /// How the group's batches are read.
    read: Arc<TableRead<'static>>,
}

/// A get waiting for a batch.
struct Waiter {
    key: Item,
    /// The key's canonical text, to match the answer and share a key asked twice.
    text: String,
    answer: oneshot::Sender<Answer>,
}

/// How a get joined its group.
enum Joined {
    /// It is sent now, alone (its key given back); the group counts it in flight.
    Lead(InFlight, Item),
    /// It waits for a batch (`key`: its key, for the error if the batch is lost).
    Wait {
        key: Item,
        answered: oneshot::Receiver<Answer>,
    },
}

/// What a batch hands a waiting get: its result, and how many gets the batch served.
struct Answer {
    result: Result<Option<Item>>,
    batch: usize,
}

impl Coalescer {
    /// A coalescer that lets `max_in_flight` requests of a group (at least one) be in flight
    /// before further gets wait for a batch.
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Coalescer {
            groups: Mutex::default(),
            max_in_flight: max_in_flight.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<GroupKey, Group>> {
        self.groups.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads `get`: sends it now with `alone` (a plain GetItem of the key) when its group is
    /// idle, else waits for the group's next batch.
    pub(crate) async fn get<A, F>(
        &self,
        client: &Client,
        get: CoalescedGet<'_>,
        alone: A,
    ) -> Result<Option<Item>>
    where
        A: FnOnce(Item) -> F,
        F: std::future::Future<Output = Result<Option<Item>>>,
    {
        let (table, entity) = (get.table, get.schema.entity);
        let (own_key, answered) = match self.join(client, get) {
            Joined::Lead(in_flight, key) => {
                // The group waits for this GetItem, and is handed on when it ends or is dropped.
                let _in_flight = in_flight;
                return alone(key).await;
            }
            Joined::Wait { key, answered } => (key, answered),
        };
        let span = tracing::info_span!(
            "dynamite",
            operation = "GetItem",
            table,
            entity,
            coalesced = true,
            batch_size = tracing::field::Empty,
        );
        match answered.instrument(span.clone()).await {
            Ok(answer) => {
                span.record("batch_size", answer.batch);
                answer.result
            }
            // The batch's task was dropped (its runtime shut down): the key was not read.
            Err(_) => Err(not_read(table, own_key)),
        }
    }

    /// Joins `get` to its group: it leads (sends a GetItem now) when the group is idle, else it
    /// waits for the next batch, which goes now if it is full.
    fn join(&self, client: &Client, get: CoalescedGet<'_>) -> Joined {
        let group_key = GroupKey::of(&get);
        let mut groups = self.lock();
        // Idle groups are kept (up to `MAX_IDLE_GROUPS`): the key is cloned only for a new one.
        if !groups.contains_key(&group_key) {
            groups.insert(group_key.clone(), Group::new(&get));
        }
        let group = groups.get_mut(&group_key).expect("inserted above");
        if group.in_flight < self.max_in_flight {
            group.in_flight += 1;
            let in_flight = InFlight {
                client: client.clone(),
                key: group_key,
            };
            return Joined::Lead(in_flight, get.key);
        }
        let mut text = String::with_capacity(64);
        item_key_text(&mut text, &get.key, &group.read.key_names);
        let (answer, answered) = oneshot::channel();
        let key = get.key.clone();
        group.waiting.push(Waiter {
            key: get.key,
            text,
            answer,
        });
        let full = (group.waiting.len() >= MAX_KEYS_PER_REQUEST)
            .then(|| Batch::take(client, &group_key, group));
        drop(groups);
        if let Some(batch) = full {
            batch.spawn();
        }
        Joined::Wait { key, answered }
    }

    /// A request of the group `key` ended: the next batch goes now if gets are waiting.
    fn finished(&self, client: &Client, key: &GroupKey) {
        let mut groups = self.lock();
        let Some(group) = groups.get_mut(key) else {
            return;
        };
        group.in_flight -= 1;
        // Callers that stopped waiting need no read.
        group.waiting.retain(|waiter| !waiter.answer.is_closed());
        let next = (!group.waiting.is_empty()).then(|| Batch::take(client, key, group));
        if group.in_flight == 0 && groups.len() > MAX_IDLE_GROUPS {
            groups.remove(key);
        }
        drop(groups);
        if let Some(batch) = next {
            batch.spawn();
        }
    }
}

impl Group {
    fn new(get: &CoalescedGet<'_>) -> Self {
        Group {
            in_flight: 0,
            waiting: Vec::new(),
            read: Arc::new(TableRead {
                table: get.table.to_owned(),
                entity: get.schema.entity,
                key_names: get.schema.primary_key_names(),
                projection: get.projection.map(str::to_owned),
                names: get.names.cloned(),
                consistent: get.consistent,
                retry: None,
            }),
        }
    }
}

/// Counts one request of a group in flight until dropped.
struct InFlight {
    client: Client,
    key: GroupKey,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.client.coalescer().finished(&self.client, &self.key);
    }
}

/// Up to [`MAX_KEYS_PER_REQUEST`] waiting gets of a group, counted in flight, to be read as
/// one BatchGetItem.
struct Batch {
    in_flight: InFlight,
    read: Arc<TableRead<'static>>,
    waiters: Vec<Waiter>,
}

impl Batch {
    /// Takes the first waiting gets of `group` (the lock held).
    fn take(client: &Client, key: &GroupKey, group: &mut Group) -> Batch {
        let take = group.waiting.len().min(MAX_KEYS_PER_REQUEST);
        group.in_flight += 1;
        Batch {
            in_flight: InFlight {
                client: client.clone(),
                key: key.clone(),
            },
            read: Arc::clone(&group.read),
            waiters: group.waiting.drain(..take).collect(),
        }
    }

    /// Reads it on a task of its own (the lock released: a batch dropped at once, by a runtime
    /// shutting down, hands its group on). Without a Tokio runtime its gets fail as not read.
    fn spawn(self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(read_batch(self));
        }
    }
}

/// Reads one batch and answers each of its gets.
async fn read_batch(batch: Batch) {
    let Batch {
        in_flight,
        read,
        waiters,
    } = batch;
    let gets = waiters.len();
    // Each distinct key once; `wanted` counts the gets of each.
    let mut wanted: HashMap<String, usize> = HashMap::with_capacity(gets);
    let mut keys = Vec::with_capacity(gets);
    let mut answers = Vec::with_capacity(gets);
    for Waiter { key, text, answer } in waiters {
        let count = wanted.entry(text.clone()).or_insert(0);
        if *count == 0 {
            keys.push(key);
        }
        *count += 1;
        answers.push((text, answer));
    }
    let span = tracing::info_span!(
        "dynamite.coalesce",
        table = %read.table,
        gets,
        keys = keys.len(),
    );
    let outcome = read
        .read_chunk(&in_flight.client, keys)
        .instrument(span)
        .await;
    let labels = metrics::RequestLabels {
        operation: Operation::BatchGetItem,
        table: &read.table,
        entity: read.entity,
    };
    metrics::coalesced_batch(labels, gets);
    let by_text = |items: Vec<Item>| -> HashMap<String, Item> {
        let mut text = String::with_capacity(64);
        items
            .into_iter()
            .filter_map(|item| {
                text.clear();
                item_key_text(&mut text, &item, &read.key_names).then(|| (text.clone(), item))
            })
            .collect()
    };
    let (mut found, unread, cause, all_failed) = match outcome {
        Ok((items, _)) => (by_text(items), HashMap::new(), None, false),
        Err(Error::UnprocessedKeys { keys, read, cause }) => (
            by_text(read.into_iter().map(|(_, item)| item).collect()),
            by_text(keys.into_iter().map(|(_, key)| key).collect()),
            cause.map(|c| Arc::new(c.into_inner())),
            false,
        ),
        // The read engine reports every failure as unprocessed keys, with the keys not read;
        // should it not know them (or fail otherwise), no get is told its item is missing.
        Err(other) => (HashMap::new(), HashMap::new(), Some(Arc::new(other)), true),
    };
    let all_failed = all_failed || (cause.is_some() && unread.is_empty());
    for (text, answer) in answers {
        let left = wanted.get_mut(&text).map_or(0, |n| {
            *n -= 1;
            *n
        });
        let result = if let Some(key) = unread.get(&text) {
            Err(failure(&read.table, key.clone(), cause.as_ref()))
        } else if all_failed && !found.contains_key(&text) {
            let key = key_of(&text, &read.key_names);
            Err(failure(&read.table, key, cause.as_ref()))
        } else if left == 0 {
            Ok(found.remove(&text))
        } else {
            Ok(found.get(&text).cloned())
        };
        // A caller that stopped waiting does not take the answer: nothing else is affected.
        let _ = answer.send(Answer {
            result,
            batch: gets,
        });
    }
    drop(in_flight);
}

/// The error of a get whose key a batch did not read: the batch's failure when DynamoDB
/// refused it (its kind, code and message, shared by every get in the batch), else (DynamoDB
/// left the key unprocessed through every retry) the key as not read.
fn failure(table: &str, key: Item, cause: Option<&Arc<Error>>) -> Error {
    match cause.map(|c| (c, &**c)) {
        Some((
            shared,
            Error::Sdk {
                operation,
                table,
                kind,
                code,
                message,
                status,
                ..
            },
        )) => Error::Sdk {
            operation: *operation,
            table: table.clone(),
            kind: *kind,
            code: code.clone(),
            message: message.clone(),
            status: *status,
            source: Box::new(SharedFailure(Arc::clone(shared))),
        },
        _ => not_read(table, key),
    }
}

/// The key whose canonical text is `text` (numbers as plain decimals of the same value).
fn key_of(text: &str, key_names: &[&str]) -> Item {
    let Ok((partition, sort)) = decode_key_values(text) else {
        return Item::new();
    };
    let values = std::iter::once(partition).chain(sort);
    key_names
        .iter()
        .zip(values)
        .map(|(name, value)| ((*name).to_owned(), value))
        .collect()
}

fn not_read(table: &str, key: Item) -> Error {
    Error::UnprocessedKeys {
        keys: vec![(table.to_owned(), key)],
        read: Vec::new(),
        cause: None,
    }
}

/// A request's failure, shared by the coalesced gets it carried. Its source is the SDK's
/// error.
#[derive(Debug)]
struct SharedFailure(Arc<Error>);

impl std::fmt::Display for SharedFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request carried several coalesced gets")
    }
}

impl std::error::Error for SharedFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;
    use crate::ErrorKind;

    fn key(pairs: &[(&str, AttributeValue)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    #[test]
    fn a_key_comes_back_from_its_text() {
        let names = ["pk", "sk"];
        for item in [
            key(&[("pk", AttributeValue::S("a#b:c".into()))]),
            key(&[
                ("pk", AttributeValue::S("ü".into())),
                ("sk", AttributeValue::N("12.5".into())),
            ]),
            key(&[
                ("pk", AttributeValue::B(vec![0, 255].into())),
                ("sk", AttributeValue::S(String::new())),
            ]),
        ] {
            let names = &names[..item.len()];
            let mut text = String::new();
            assert!(item_key_text(&mut text, &item, names));
            assert_eq!(key_of(&text, names), item);
        }
    }

    #[test]
    fn gets_with_the_same_projection_share_a_group_whatever_the_order_of_its_names() {
        static SCHEMA: TableSchema = TableSchema::for_tests(None, 0);
        let schema = &SCHEMA;
        let names = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let (a, b) = (
            names(&[("#a", "x"), ("#b", "y")]),
            names(&[("#b", "y"), ("#a", "x")]),
        );
        let get = |names, consistent| CoalescedGet {
            schema,
            table: "t",
            key: Item::new(),
            projection: Some("#a, #b"),
            names,
            consistent,
        };
        let same = |x: &CoalescedGet<'_>, y: &CoalescedGet<'_>| GroupKey::of(x) == GroupKey::of(y);
        assert!(same(&get(Some(&a), false), &get(Some(&b), false)));
        assert!(!same(&get(Some(&a), false), &get(Some(&a), true)));
        assert!(!same(&get(Some(&a), false), &get(None, false)));
    }

    #[test]
    fn a_refused_request_fails_each_get_with_its_kind_and_code() {
        let refused = Arc::new(Error::Sdk {
            operation: Operation::BatchGetItem,
            table: "t".into(),
            kind: ErrorKind::Throttled,
            code: Some("ThrottlingException".into()),
            message: Some("slow down".into()),
            status: Some(400),
            source: "the SDK's error".into(),
        });
        let err = failure("t", Item::new(), Some(&refused));
        assert!(err.is_throttled());
        assert_eq!(err.code(), Some("ThrottlingException"));
        let shared = std::error::Error::source(&err).expect("the shared failure");
        let sdk = shared.source().expect("the SDK's error");
        assert_eq!(sdk.to_string(), "the SDK's error");
        // Left unprocessed to the end: the get's own key, not read.
        let own = key(&[("pk", AttributeValue::S("k".into()))]);
        match failure("t", own.clone(), None) {
            Error::UnprocessedKeys { keys, read, cause } => {
                assert_eq!(keys, vec![("t".to_owned(), own)]);
                assert!(read.is_empty() && cause.is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}
