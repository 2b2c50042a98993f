//! The delays chosen: full jitter under doubling ceilings; waits are async sleeps.

use super::*;

// ---------------------------------------------------------------------------------------------
// The delays chosen
// ---------------------------------------------------------------------------------------------

/// Checks many delays of retries `1..=max_retry` against full jitter with doubling ceilings:
/// every delay within its ceiling; for each retry number, some delay in the upper half of its
/// range (so the ceiling really doubled, then stayed at the cap) and some in the lower half
/// (full jitter, not equal jitter); and hardly any two delays alike.
fn assert_full_jitter(
    policy: &RetryPolicy,
    events: &[RetryEvent],
    max_retry: u32,
    per_retry: usize,
) {
    let mut by_retry: BTreeMap<u32, Vec<Duration>> = BTreeMap::new();
    for e in events {
        by_retry.entry(e.retry).or_default().push(e.delay);
    }
    assert_eq!(
        by_retry.keys().copied().collect::<Vec<_>>(),
        (1..=max_retry).collect::<Vec<_>>()
    );
    for (&n, delays) in &by_retry {
        let ceiling = ceiling(policy, n);
        let max = *delays.iter().max().unwrap();
        let min = *delays.iter().min().unwrap();
        assert_eq!(delays.len(), per_retry, "retry {n}");
        assert!(max <= ceiling, "retry {n}: {max:?} > {ceiling:?}");
        // With 30 uniform samples each of these fails with probability 2^-30.
        assert!(
            max > ceiling / 2,
            "retry {n}: all of {delays:?} under {:?}",
            ceiling / 2
        );
        assert!(
            min < ceiling / 2,
            "retry {n}: all of {delays:?} over {:?}",
            ceiling / 2
        );
        if n > 1 {
            let previous = self::ceiling(policy, n - 1);
            if ceiling > previous {
                assert_eq!(ceiling, previous * 2, "the ceiling doubles");
                assert!(
                    max > previous,
                    "retry {n} waited longer than retry {} could",
                    n - 1
                );
            }
        }
    }
    let distinct: HashSet<Duration> = events.iter().map(|e| e.delay).collect();
    assert!(
        distinct.len() > events.len() * 9 / 10,
        "delays vary: {distinct:?}"
    );
}

#[tokio::test]
async fn delays_double_up_to_the_cap_with_full_jitter() {
    const CALLS: usize = 30;
    // Ceilings 1, 2, 4, 8, 16, 16, 16 ms for retries 1..=7.
    let p = RetryPolicy::standard()
        .max_attempts(8)
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(16))
        .no_budget();
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    // Single item operations, throttled forever, 30 at once.
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        FOREVER,
    );
    let results =
        futures::future::join_all((0..CALLS).map(|i| Thing::get(&fx.db, key(i)).send())).await;
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(fx.proxy.count("GetItem"), CALLS * 8);
    let events = fx.capture.events_of("GetItem");
    assert_full_jitter(&p, &events, 7, CALLS);
    // Within each call, the retries are consecutive: 1, 2, ..., 7.
    let mut per_call: HashMap<usize, Vec<u32>> = HashMap::new();
    for e in &events {
        per_call
            .entry(e.span.expect("in a span"))
            .or_default()
            .push(e.retry);
    }
    assert_eq!(per_call.len(), CALLS);
    assert!(per_call.values().all(|r| *r == (1..=7).collect::<Vec<_>>()));

    // Unprocessed rounds of batch gets that never make progress back off the same way.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let results =
        futures::future::join_all((0..CALLS).map(|i| Thing::batch_get(&fx.db, [key(i)]).send()))
            .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::UnprocessedKeys { .. }))));
    assert_eq!(fx.proxy.count(BATCH_GET), CALLS * 8);
    assert_full_jitter(&p, &fx.capture.events_of(BATCH_GET), 7, CALLS);

    // And so do batch writes.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let things: Vec<Thing> = (0..CALLS).map(thing).collect();
    let results = futures::future::join_all(
        things
            .iter()
            .map(|t| Thing::batch_write(&fx.db).put(t).send()),
    )
    .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::Unprocessed { .. }))));
    assert_eq!(fx.proxy.count(BATCH_WRITE), CALLS * 8);
    assert_full_jitter(&p, &fx.capture.events_of(BATCH_WRITE), 7, CALLS);
}

#[test]
fn policy_delays_are_uniform_under_doubling_ceilings() {
    let p = RetryPolicy::standard()
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(100));
    let want = [10u64, 20, 40, 80, 100, 100, 100];
    for (i, &ceiling_ms) in want.iter().enumerate() {
        let n = i as u32 + 1;
        let ceiling = Duration::from_millis(ceiling_ms);
        assert_eq!(p.delay_ceiling(n), ceiling);
        assert_eq!(self::ceiling(&p, n), ceiling);
        let samples: Vec<Duration> = (0..2000).map(|_| p.delay(n)).collect();
        assert!(samples.iter().all(|d| *d <= ceiling), "retry {n}");
        let max = *samples.iter().max().unwrap();
        let min = *samples.iter().min().unwrap();
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        assert!(max > ceiling * 9 / 10, "retry {n}: max {max:?}");
        assert!(min < ceiling / 10, "retry {n}: min {min:?}");
        // Uniform on [0, c]: the mean is c/2 (its standard error here is under c/150).
        assert!(
            mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10,
            "retry {n}: mean {mean:?}"
        );
    }
    // Far retries stay at the cap, without overflowing.
    assert_eq!(p.delay_ceiling(1000), Duration::from_millis(100));
    let huge = RetryPolicy::standard()
        .base_delay(Duration::from_secs(3600))
        .max_delay(Duration::MAX);
    assert!(huge.delay_ceiling(u32::MAX) >= Duration::from_secs(3600));
    assert!(huge.delay(64) <= huge.delay_ceiling(64));
}

/// A client whose endpoint refuses connections: every attempt is a transport error.
async fn unreachable(policy: RetryPolicy) -> Client {
    support::unreachable_builder()
        .await
        .retry_policy(policy)
        .build()
}

/// The waits are tokio sleeps, not blocking ones: they last at least the delay chosen, and
/// while one call waits, another call on the same single-threaded runtime keeps running. (A
/// blocking sleep would run from the retry event to the next attempt within one poll, so no
/// other call could do anything in between.)
///
/// Real time on purpose: this checks that the waits are real sleeps. Paused time (tokio's
/// `test-util`, on in the dev-dependencies) checks the exact delays in `paused.rs`.
#[tokio::test]
async fn backoff_waits_are_async_sleeps_of_the_chosen_length() {
    let capture = Capture::default();
    let _guard = capture.install();
    let p = RetryPolicy::standard()
        .max_attempts(8)
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(16))
        .no_budget();
    let db = unreachable(p.clone()).await;

    let start = tokio::time::Instant::now();
    let (a, b) = tokio::join!(
        Thing::get(&db, key(1)).send(),
        Thing::get(&db, key(2)).send()
    );
    let elapsed = start.elapsed();

    let mut waited = HashMap::new();
    for err in [a.unwrap_err(), b.unwrap_err()] {
        assert_eq!(err.kind(), Some(ErrorKind::NotSent), "{err:?}");
        // No invented codes: the service never answered.
        assert_eq!(sdk_error(&err).1, None, "{err:?}");
    }
    let events = capture.events();
    assert_eq!(events.len(), 2 * 7, "{events:?}");
    for e in &events {
        assert_eq!(e.reason, "NotSent");
        assert!(e.delay <= ceiling(&p, e.retry), "{e:?}");
        *waited.entry(e.span.unwrap()).or_insert(Duration::ZERO) += e.delay;
    }
    assert_eq!(waited.len(), 2);
    // Each call slept at least its own delays (and both slept at the same time, below).
    let longest = *waited.values().max().unwrap();
    assert!(elapsed >= longest, "{elapsed:?} < {longest:?}");

    // Each call: attempt, wait, attempt, ..., attempt.
    let marks = capture.marks();
    for &call in waited.keys() {
        let own: Vec<Mark> = marks
            .iter()
            .copied()
            .filter(|m| matches!(m, Mark::Attempt(c) | Mark::Wait(c) if *c == call))
            .collect();
        let want: Vec<Mark> = (0..15)
            .map(|i| {
                if i % 2 == 0 {
                    Mark::Attempt(call)
                } else {
                    Mark::Wait(call)
                }
            })
            .collect();
        assert_eq!(own, want);
    }
    // Some wait of one call has the other call's doings inside it: a wait from its event to its
    // call's next attempt that is not one uninterrupted step.
    let interleaved = marks
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match m {
            Mark::Wait(call) => Some((i, *call)),
            Mark::Attempt(_) => None,
        })
        .filter(|&(i, call)| {
            let end = marks[i + 1..]
                .iter()
                .position(|m| *m == Mark::Attempt(call))
                .expect("an attempt follows every wait")
                + i
                + 1;
            marks[i + 1..end]
                .iter()
                .any(|m| !matches!(m, Mark::Attempt(c) | Mark::Wait(c) if *c == call))
        })
        .count();
    assert!(
        interleaved > 0,
        "the calls never ran during each other's waits: {marks:?}"
    );
}
