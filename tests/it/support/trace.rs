//! The one tracing capture of the harness: what dynamite's `dynamite` spans and
//! `dynamite::retry` events said, for the tests that check requests, retries and spans.
//!
//! Two ways to install it:
//! - [`Capture::install`]: for the current thread only, until the guard drops (tokio's default
//!   test runtime runs the whole test on one thread), so a test sees exactly its own calls;
//! - [`requests`] (after [`install_global`]): one capture for every thread of the binary, as
//!   the process-wide subscriber; each test counts the requests to its own tables (by its
//!   table prefix), which also works for multi-threaded tests.
//!
//! tracing-core caches each callsite's interest. While exactly one dispatcher is registered, it
//! computes that from the *registering thread's* default only, so a callsite first hit on
//! another test's thread (no subscriber) would be cached as "never". Both ways keep a second,
//! never-interested dispatcher alive for the whole run (so interest is always combined over
//! every dispatcher, i.e. "sometimes") and rebuild the cache after installing.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use dynamite::Client;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// One `dynamite::retry` event: a wait the retry layer chose before another attempt.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "testing"), allow(dead_code))] // read by faults
pub(crate) struct RetryEvent {
    pub operation: String,
    pub retry: u32,
    pub delay: Duration,
    pub reason: String,
    /// The `dynamite` span (index into the captured spans) the wait ran in, if any.
    pub span: Option<usize>,
}

/// A point in a call's life, in the order they happened on the (single) test thread: the
/// `usize` is the call's `dynamite` span (index into the captured spans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// The SDK started an attempt (its per-operation span, `DynamoDB.<Operation>`, opened).
    Attempt(usize),
    /// The retry layer started a wait (its `dynamite::retry` event).
    Wait(usize),
}

#[derive(Default)]
struct Captured {
    events: Vec<RetryEvent>,
    marks: Vec<Mark>,
    /// Fields of every `dynamite` span, including those recorded later.
    spans: Vec<HashMap<String, String>>,
    /// Spans before this index were created before the last `clear`.
    since: usize,
    /// Open `dynamite` spans: span id -> index into `spans`.
    open: HashMap<u64, usize>,
    open_per_operation: HashMap<String, usize>,
    max_open_per_operation: HashMap<String, usize>,
    /// Fields of every `dynamite::slow` event (the slow-operation log).
    slow: Vec<HashMap<String, String>>,
}

/// A `Layer` recording the `dynamite::retry` events and the `dynamite` spans (with the fields
/// recorded later, such as `retries` and `consumed_capacity`), and how many `dynamite` spans of
/// each operation were open at once.
#[derive(Clone, Default)]
pub(crate) struct Capture {
    state: Arc<Mutex<Captured>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name().starts_with("DynamoDB.") {
            // The SDK's span of one operation invocation (one attempt of dynamite's loop).
            let parent = ctx
                .span(id)
                .and_then(|s| s.parent())
                .map(|p| p.id().into_u64());
            let mut state = self.lock();
            if let Some(&call) = parent.and_then(|p| state.open.get(&p)) {
                state.marks.push(Mark::Attempt(call));
            }
            return;
        }
        if attrs.metadata().name() != "dynamite" {
            return;
        }
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let operation = fields.get("operation").cloned().unwrap_or_default();
        let mut state = self.lock();
        state.spans.push(fields);
        let index = state.spans.len() - 1;
        state.open.insert(id.into_u64(), index);
        let open = state
            .open_per_operation
            .entry(operation.clone())
            .or_default();
        *open += 1;
        let open = *open;
        let max = state.max_open_per_operation.entry(operation).or_default();
        *max = (*max).max(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut state = self.lock();
        if let Some(&index) = state.open.get(&id.into_u64()) {
            values.record(&mut Fields(&mut state.spans[index]));
        }
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut state = self.lock();
        if let Some(index) = state.open.remove(&id.into_u64()) {
            let operation = state.spans[index]
                .get("operation")
                .cloned()
                .unwrap_or_default();
            if let Some(open) = state.open_per_operation.get_mut(&operation) {
                *open -= 1;
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() == "dynamite::slow" {
            let mut fields = HashMap::new();
            event.record(&mut Fields(&mut fields));
            self.lock().slow.push(fields);
            return;
        }
        if event.metadata().target() != "dynamite::retry" {
            return;
        }
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let span_id = ctx.event_span(event).map(|span| span.id().into_u64());
        let mut state = self.lock();
        let span = span_id.and_then(|id| state.open.get(&id).copied());
        if let Some(call) = span {
            state.marks.push(Mark::Wait(call));
        }
        let number = |name: &str| -> u64 {
            fields
                .get(name)
                .unwrap_or_else(|| panic!("retry event without {name}: {fields:?}"))
                .parse()
                .unwrap_or_else(|_| panic!("retry event with a bad {name}: {fields:?}"))
        };
        let retry = number("retry") as u32;
        let delay = Duration::from_micros(number("delay_us"));
        state.events.push(RetryEvent {
            operation: fields.get("operation").cloned().unwrap_or_default(),
            retry,
            delay,
            reason: fields.get("reason").cloned().unwrap_or_default(),
            span,
        });
    }
}

/// Keeps a second dispatcher registered for the whole run (see the module docs).
fn keep_interest_combined() {
    static KEEP: OnceLock<tracing::Dispatch> = OnceLock::new();
    KEEP.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

impl Capture {
    /// Captures what happens on this thread until the guard drops.
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        keep_interest_combined();
        let guard =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(self.clone()));
        tracing::callsite::rebuild_interest_cache();
        guard
    }

    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets the events, the spans made so far and the in-flight maxima.
    pub(crate) fn clear(&self) {
        let mut state = self.lock();
        state.events.clear();
        state.marks.clear();
        state.since = state.spans.len();
        state.max_open_per_operation.clear();
        state.slow.clear();
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by faults
    pub(crate) fn marks(&self) -> Vec<Mark> {
        self.lock().marks.clone()
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by faults
    pub(crate) fn events(&self) -> Vec<RetryEvent> {
        self.lock().events.clone()
    }

    /// The delays of the retry events since the last `clear`.
    pub(crate) fn delays(&self) -> Vec<Duration> {
        self.lock().events.iter().map(|e| e.delay).collect()
    }

    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by faults
    pub(crate) fn events_of(&self, operation: &str) -> Vec<RetryEvent> {
        self.lock()
            .events
            .iter()
            .filter(|e| e.operation == operation)
            .cloned()
            .collect()
    }

    /// The fields of every `dynamite` span since the last `clear`, in creation order.
    /// The fields of every slow-operation warning (`dynamite::slow`).
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by http
    pub(crate) fn slow(&self) -> Vec<HashMap<String, String>> {
        self.lock().slow.clone()
    }

    pub(crate) fn spans(&self) -> Vec<HashMap<String, String>> {
        let state = self.lock();
        state.spans[state.since..].to_vec()
    }

    /// (index, fields) of the `dynamite` spans of `operation` since the last `clear`.
    pub(crate) fn spans_of(&self, operation: &str) -> Vec<(usize, HashMap<String, String>)> {
        let state = self.lock();
        state
            .spans
            .iter()
            .enumerate()
            .skip(state.since)
            .filter(|(_, s)| s.get("operation").map(String::as_str) == Some(operation))
            .map(|(i, s)| (i, s.clone()))
            .collect()
    }

    /// How many `dynamite` spans of `operation` (requests sent) since the last `clear`.
    pub(crate) fn count(&self, operation: &str) -> usize {
        self.spans_of(operation).len()
    }

    /// The most `dynamite` spans of `operation` open at once since the last `clear`.
    #[cfg_attr(not(feature = "testing"), allow(dead_code))] // used by faults
    pub(crate) fn max_open(&self, operation: &str) -> usize {
        self.lock()
            .max_open_per_operation
            .get(operation)
            .copied()
            .unwrap_or(0)
    }
}

static GLOBAL: OnceLock<Capture> = OnceLock::new();

/// Installs a [`Capture`] as the process-wide subscriber (once per test binary), for
/// [`requests`]. Threads with a capture of their own ([`Capture::install`]) report to theirs.
///
/// A global subscriber sees the spans of every thread, so multi-threaded tests are counted too.
/// Every test uses its own table prefix, so each counts only its own requests.
pub(crate) fn install_global() {
    GLOBAL.get_or_init(|| {
        keep_interest_combined();
        let capture = Capture::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(capture.clone()),
        )
        .expect("no other global subscriber in this test binary");
        tracing::callsite::rebuild_interest_cache();
        capture
    });
}

/// DynamoDB requests of `operation` sent so far to the tables of `db` (by its table prefix),
/// as seen by the process-wide capture ([`install_global`] first).
pub(crate) fn requests(db: &Client, operation: &str) -> usize {
    let prefix = db.table_prefix();
    let state = GLOBAL.get().expect("trace::install_global() first").lock();
    state
        .spans
        .iter()
        .filter(|s| {
            s.get("operation").map(String::as_str) == Some(operation)
                && s.get("table").is_some_and(|t| t.starts_with(prefix))
        })
        .count()
}
