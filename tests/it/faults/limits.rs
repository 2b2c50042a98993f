//! Limits: max attempts, the retry budget, the SDK's own loop; and what is not retried.

use super::*;

// ---------------------------------------------------------------------------------------------
// Limits: attempts, budget, the SDK's own loop
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn always_failing_requests_stop_after_max_attempts() {
    let p = policy(4);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    // A single item operation.
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("ThrottlingException")));
    assert_eq!(err.kind(), Some(ErrorKind::Throttled));
    assert!(err.is_throttled());
    assert_eq!(fx.proxy.count("GetItem"), 4);
    fx.assert_retried(&p, "GetItem", &["ThrottlingException"; 3]);
    let (_, span) = &fx.capture.spans_of("GetItem")[0];
    assert!(
        span.contains_key("error"),
        "the span records the error: {span:?}"
    );

    // A per-call policy overrides the client's.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::UpdateItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::update(&fx.db, key(1))
        .add(Thing::N, 1)
        .retry(policy(2))
        .await
        .unwrap_err();
    assert_eq!(sdk_error(&err), ("UpdateItem", Some("ThrottlingException")));
    assert_eq!(fx.proxy.count("UpdateItem"), 2);

    // A batch write whose every request is throttled: one chunk, max_attempts requests, every
    // operation handed back, the throttling error as the cause.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::Throttling,
        FOREVER,
    );
    let things: Vec<Thing> = (0..10).map(thing).collect();
    let err = Thing::batch_write(&fx.db)
        .put_all(&things)
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_WRITE), 4);
    match &err {
        Error::Unprocessed {
            operations,
            unknown,
            applied,
            cause,
        } => {
            assert_eq!(*applied, 0);
            assert!(unknown.is_empty(), "throttled requests were not applied");
            assert_eq!(
                sorted(operations.iter().map(op_id).collect()),
                (0..10).map(id).collect::<Vec<_>>()
            );
            let cause = cause.as_deref().expect("the throttling error is the cause");
            assert_eq!(sdk_error(cause), (BATCH_WRITE, Some("ThrottlingException")));
        }
        other => panic!("{other:?}"),
    }

    // A batch write whose every request comes back all unprocessed.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_write(&fx.db)
        .put_all(&things)
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_WRITE), 4);
    match &err {
        Error::Unprocessed {
            operations,
            unknown,
            applied: 0,
            cause: None,
        } => {
            assert_eq!(operations.len(), 10);
            assert!(unknown.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let events = fx.capture.events_of(BATCH_WRITE);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.retry, e.reason.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (1, "UnprocessedItems"),
            (2, "UnprocessedItems"),
            (3, "UnprocessedItems")
        ]
    );
    assert!(
        events.iter().all(|e| e.delay <= ceiling(&p, e.retry)),
        "{events:?}"
    );

    // The same for batch gets.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..10).map(key))
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_GET), 4);
    match &err {
        Error::UnprocessedKeys { keys, cause, .. } => {
            assert_eq!(keys.len(), 10);
            let cause = cause.as_deref().expect("the throttling error is the cause");
            assert_eq!(sdk_error(cause), (BATCH_GET, Some("ThrottlingException")));
        }
        other => panic!("{other:?}"),
    }
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..10).map(key))
        .await
        .unwrap_err();
    assert_eq!(fx.proxy.count(BATCH_GET), 4);
    assert!(
        matches!(&err, Error::UnprocessedKeys { keys, cause: None, .. } if keys.len() == 10),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_budget_smaller_than_the_delays_stops_retrying_early() {
    let budget = Duration::from_millis(30);
    let p = RetryPolicy::standard()
        .max_attempts(100)
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(40))
        .budget(budget);
    let fx = Fx::start(p.clone()).await;
    create::<Thing>(&fx).await;

    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::Throttling,
        FOREVER,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("ThrottlingException")));
    let requests = fx.proxy.count("GetItem");
    let events = fx.capture.events_of("GetItem");
    assert!(
        requests < 100,
        "the budget, not max_attempts, stopped it: {requests}"
    );
    assert_eq!(requests, events.len() + 1);
    // No retry started whose delay would end past the budget, so the waits fit in it.
    let waited: Duration = events.iter().map(|e| e.delay).sum();
    assert!(waited <= budget, "{waited:?} > {budget:?}: {events:?}");
    assert!(
        events.iter().all(|e| e.delay <= ceiling(&p, e.retry)),
        "{events:?}"
    );

    // Unprocessed rounds of a batch read obey the budget too.
    fx.reset();
    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::UnprocessedAll,
        FOREVER,
    );
    let err = Thing::batch_get(&fx.db, (0..5).map(key)).await.unwrap_err();
    assert!(
        matches!(&err, Error::UnprocessedKeys { keys, cause: None, .. } if keys.len() == 5),
        "{err:?}"
    );
    let requests = fx.proxy.count(BATCH_GET);
    let events = fx.capture.events_of(BATCH_GET);
    assert!(requests < 100, "{requests}");
    assert_eq!(requests, events.len() + 1);
    let waited: Duration = events.iter().map(|e| e.delay).sum();
    assert!(waited <= budget, "{waited:?} > {budget:?}: {events:?}");
}

#[tokio::test]
async fn the_sdk_retry_loop_is_off_unless_kept() {
    // Default build over an SDK config with standard retries: dynamite's loop only.
    let fx = Fx::start(policy(4)).await;
    create::<Thing>(&fx).await;
    let sdk_retry = fx.db.sdk().config().retry_config().cloned();
    assert_eq!(
        sdk_retry.map(|r| r.max_attempts()),
        Some(1),
        "build() disables the SDK's retries"
    );
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        FOREVER,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("InternalServerError")));
    assert_eq!(
        fx.proxy.count("GetItem"),
        4,
        "max_attempts, not max_attempts × 3"
    );

    // keep_sdk_retries + RetryPolicy::none(): the SDK's standard loop (3 attempts) is in charge.
    fx.reset();
    let kept = fx
        .another_client(sdk_standard_retries(), |b| {
            b.keep_sdk_retries().retry_policy(RetryPolicy::none())
        })
        .await;
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        FOREVER,
    );
    let err = Thing::get(&kept, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("InternalServerError")));
    assert_eq!(
        fx.proxy.count("GetItem"),
        3,
        "the SDK's standard 3 attempts"
    );
    assert!(fx.capture.events().is_empty(), "dynamite did not retry");

    // Both loops kept: attempts multiply (which is why build() turns the SDK's off).
    fx.reset();
    let both = fx
        .another_client(sdk_standard_retries(), |b| {
            b.keep_sdk_retries().retry_policy(policy(2))
        })
        .await;
    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::InternalServerError,
        FOREVER,
    );
    Thing::get(&both, key(1)).await.unwrap_err();
    assert_eq!(
        fx.proxy.count("GetItem"),
        6,
        "2 dynamite attempts × 3 SDK attempts"
    );
}

// ---------------------------------------------------------------------------------------------
// What is not retried
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn non_retryable_errors_fail_at_once() {
    let fx = Fx::start(policy(5)).await;
    create::<Thing>(&fx).await;
    thing(1).put(&fx.direct).await.unwrap();

    fx.proxy.script(
        Match::Operation(Operation::GetItem),
        Fault::ValidationError,
        1,
    );
    let err = Thing::get(&fx.db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("GetItem", Some("ValidationException")));
    assert_eq!(fx.proxy.count("GetItem"), 1);

    fx.proxy
        .script(Match::Operation(Operation::PutItem), Fault::AccessDenied, 1);
    let err = thing(2).put(&fx.db).await.unwrap_err();
    assert_eq!(sdk_error(&err), ("PutItem", Some("AccessDeniedException")));
    assert_eq!(fx.proxy.count("PutItem"), 1);

    fx.proxy.script(
        Match::Operation(Operation::BatchGetItem),
        Fault::AccessDenied,
        1,
    );
    let err = Thing::batch_get(&fx.db, (0..10).map(key))
        .await
        .unwrap_err();
    match &err {
        Error::UnprocessedKeys { keys, cause, .. } => {
            assert_eq!(keys.len(), 10);
            let cause = cause.as_deref().expect("cause");
            assert_eq!(sdk_error(cause), (BATCH_GET, Some("AccessDeniedException")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.proxy.count(BATCH_GET), 1);

    fx.proxy.script(
        Match::Operation(Operation::BatchWriteItem),
        Fault::ValidationError,
        1,
    );
    let err = Thing::batch_write(&fx.db).put(&thing(3)).await.unwrap_err();
    match &err {
        Error::Unprocessed {
            operations,
            applied: 0,
            cause: Some(cause),
            ..
        } => {
            assert_eq!(operations.len(), 1);
            assert_eq!(sdk_error(cause), (BATCH_WRITE, Some("ValidationException")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fx.proxy.count(BATCH_WRITE), 1);

    // Failed conditions, from the real server.
    let err = thing(1).put(&fx.db).if_not_exists().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConditionFailed {
                operation: dynamite::Operation::PutItem,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fx.proxy.count("PutItem"), 2);
    let err = Thing::update(&fx.db, key(1))
        .add(Thing::N, 1)
        .condition(Thing::N.eq(999))
        .await
        .unwrap_err();
    assert!(err.is_condition_failed(), "{err:?}");
    assert_eq!(fx.proxy.count("UpdateItem"), 1);
    let err = Thing::delete(&fx.db, key(1))
        .condition(Thing::N.eq(999))
        .await
        .unwrap_err();
    assert!(err.is_condition_failed(), "{err:?}");
    assert_eq!(fx.proxy.count("DeleteItem"), 1);
    let err = fx
        .db
        .transact_write()
        .update_if(key(1), Update::new().add(Thing::N, 1), Thing::N.eq(999))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TransactionCanceled { .. }), "{err:?}");
    assert_eq!(fx.proxy.count("TransactWriteItems"), 1);

    assert!(fx.capture.events().is_empty(), "{:?}", fx.capture.events());
    assert_eq!(fx.proxy.pending(), 0);
    assert_eq!(
        stored(&fx).await.get(&id(1)),
        Some(&1),
        "nothing was applied"
    );
}

#[tokio::test]
async fn server_errors_with_an_unlisted_code_are_retried() {
    let capture = Capture::default();
    let _guard = capture.install();
    // A proxy whose upstream is down answers every request `502 FaultProxyUpstreamError`.
    let proxy = FaultProxy::start("http://127.0.0.1:9").await;
    let sdk = sdk_via(&proxy.endpoint(), sdk_standard_retries()).await;
    let db = Client::builder(sdk).retry_policy(policy(3)).build();
    let err = Thing::get(&db, key(1)).await.unwrap_err();
    assert_eq!(sdk_error(&err).1, Some("FaultProxyUpstreamError"));
    assert_eq!(
        proxy.count("GetItem"),
        3,
        "a 502 is a server error, retried like 500 and 503: {err:?}"
    );
}
