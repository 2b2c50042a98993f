//! Scans: the fallback with `allow_scan`, filters, projections, limits and cursors on scans;
//! count, first and parallel scans.

use super::*;

#[tokio::test]
async fn allow_scan_falls_back_to_a_scan() {
    let (db, data) = order_db().await;
    let cond = || Order::NOTE.contains("other").or(Order::TOTAL.lt(10));
    let pred = |o: &Order| o.note.contains("other") || o.total < 10;
    let err = Order::find(&db).filter(cond()).explain().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::ScanRequired { .. }), "{err:?}");
    for key in [
        "`customer` (the table)",
        "`status` (global index ByStatus)",
        "`status` (global index ByStatusTotal)",
        "`region` (global index ByRegion)",
        "`customer` (local index ByTotalLocal)",
    ] {
        assert!(msg.contains(key), "{key} in {msg}");
    }

    let q = || Order::find(&db).filter(cond()).allow_scan();
    let plan = q().explain().unwrap();
    assert_eq!(plan.operation, Operation::Scan);
    assert_eq!(plan.index, None);
    assert_eq!(plan.key_condition, None);
    assert_eq!(
        plan.filter.as_deref(),
        Some(r#"(contains(note, "other")) OR (total < 10)"#)
    );
    assert!(!plan.reason.is_empty());
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let want = sorted(expect(&data, pred, |o| o.day.clone()));
    assert_eq!(sorted(keys(&q().unbounded().all().await.unwrap())), want);
    assert_eq!(q().count().await.unwrap(), want.len());
    // Through the stream (no limit needed) and a limit.
    let streamed: Vec<Order> = q().stream().try_collect().await.unwrap();
    assert_eq!(sorted(keys(&streamed)), want);
    assert_eq!(q().limit(3).all().await.unwrap().len(), 3);
    // A covered find with allow_scan is still a query.
    let covered = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .allow_scan();
    assert_eq!(covered.explain().unwrap().operation, Operation::Query);
}

#[tokio::test]
async fn scan_with_filter_projection_limit_and_cursor() {
    let (db, data) = order_db().await;
    let q = || {
        Order::scan(&db)
            .filter(Order::TOTAL.ge(50))
            .filter(Order::NOTE.begins_with("note"))
            .project::<OrderTotal>()
            .select([Order::TOTAL])
    };
    let plan = q().explain().unwrap();
    assert_eq!(plan.operation, Operation::Scan);
    assert_eq!(plan.index, None);
    assert_eq!(plan.key_condition, None);
    assert_eq!(
        plan.filter.as_deref(),
        Some(r#"total >= 50 AND begins_with(note, "note")"#)
    );
    assert_eq!(plan.projection, Some(vec!["total".to_owned()]));
    assert!(!plan.fetches_base_items);
    assert!(plan.reason.contains("scan"), "{}", plan.reason);

    let mut want: Vec<(String, String, i64)> = data
        .iter()
        .filter(|o| o.total >= 50 && o.note.starts_with("note"))
        .map(|o| (o.customer.clone(), o.day.clone(), o.total))
        .collect();
    want.sort();
    assert!(want.len() > 8);
    let flat = |v: Vec<OrderTotal>| {
        let mut v: Vec<_> = v
            .into_iter()
            .map(|t| (t.customer, t.day, t.total))
            .collect();
        v.sort();
        v
    };
    // Pages of 4 with cursors: every match exactly once (keys are read even if not selected).
    let paged = page_loop(4, q).await;
    assert_eq!(flat(paged), want);
    // Same with a small page size (several requests per page).
    let paged = page_loop(3, || q().page_size(5)).await;
    assert_eq!(flat(paged), want);
    // A limit, and all() with unbounded().
    assert_eq!(q().limit(5).all().await.unwrap().len(), 5);
    assert_eq!(flat(q().unbounded().all().await.unwrap()), want);
    assert_eq!(q().count().await.unwrap(), want.len());
    // A cursor handed to after().
    let first = q().limit(4).page(None).await.unwrap();
    let rest = q()
        .after(first.next.clone().unwrap())
        .unbounded()
        .all()
        .await
        .unwrap();
    let mut both = first.items;
    both.extend(rest);
    assert_eq!(flat(both), want);

    // A scan of an index, with a cursor.
    let idx = || {
        Order::scan(&db)
            .index(Order::BY_STATUS)
            .filter(Order::TOTAL.lt(30))
    };
    let plan = idx().explain().unwrap();
    assert_eq!(
        (plan.operation, plan.index),
        (Operation::Scan, Some("ByStatus"))
    );
    let mut got = keys(&page_loop(2, idx).await);
    got.sort();
    assert_eq!(
        got,
        expect(
            &data,
            |o| o.total < 30,
            |o| (o.customer.clone(), o.day.clone())
        )
    );
    // A scan with equality on the whole key is still a scan.
    let q = Order::scan(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::DAY.eq("d001"));
    assert_eq!(q.explain().unwrap().operation, Operation::Scan);
    assert_eq!(q.unbounded().all().await.unwrap(), vec![data[1].clone()]);
}

// ---------------------------------------------------------------------------------------------
// count, first, parallel scans
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn count_first_and_parallel_scan() {
    let db = setup::<Row>().await;
    let mut data = rows("a", 150);
    data.extend(rows("b", 150));
    batch_put(&db, &data).await;
    let a = || Row::find(&db).filter(Row::PART.eq("a"));

    assert_eq!(a().count().await.unwrap(), 150);
    assert_eq!(a().filter(Row::V.eq(3)).count().await.unwrap(), 15);
    assert_eq!(
        a().filter(Row::V.eq(3)).page_size(7).count().await.unwrap(),
        15
    );
    assert_eq!(a().filter(Row::N.lt(40)).count().await.unwrap(), 40);
    assert_eq!(a().limit(20).count().await.unwrap(), 20);
    assert_eq!(a().filter(Row::V.eq(99)).count().await.unwrap(), 0);
    // With a selection (not sent with Select=COUNT) and on a scan.
    assert_eq!(
        a().filter(Row::V.gt(5))
            .select([Row::V])
            .count()
            .await
            .unwrap(),
        60
    );
    assert_eq!(Row::scan(&db).count().await.unwrap(), 300);
    assert_eq!(
        Row::scan(&db).filter(Row::V.eq(0)).count().await.unwrap(),
        30
    );

    assert_eq!(a().first().await.unwrap(), Some(data[0].clone()));
    assert_eq!(
        a().descending().first().await.unwrap(),
        Some(data[149].clone())
    );
    assert_eq!(
        a().filter(Row::V.eq(9)).first().await.unwrap().map(|r| r.n),
        Some(7)
    );
    assert_eq!(a().filter(Row::V.eq(99)).first().await.unwrap(), None);
    assert!(Row::scan(&db).first().await.unwrap().is_some());

    // Parallel scans: every item exactly once.
    let mut want: Vec<(String, u32)> = data.iter().map(|r| (r.part.clone(), r.n)).collect();
    want.sort();
    let sorted = |v: Vec<Row>| {
        let mut v: Vec<(String, u32)> = v.into_iter().map(|r| (r.part, r.n)).collect();
        v.sort();
        v
    };
    let got: Vec<Row> = Row::scan(&db)
        .segments(4)
        .concurrency(2)
        .page_size(16)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(sorted(got), want);
    let got = Row::scan(&db)
        .segments(4)
        .concurrency(2)
        .unbounded()
        .all()
        .await
        .unwrap();
    assert_eq!(sorted(got), want);
    let got = Row::scan(&db)
        .filter(Row::V.lt(2))
        .segments(3)
        .concurrency(3)
        .page_size(10)
        .unbounded()
        .all()
        .await
        .unwrap();
    let want_f: Vec<(String, u32)> = want
        .iter()
        .filter(|(p, n)| {
            data.iter()
                .find(|r| &r.part == p && r.n == *n)
                .is_some_and(|r| r.v < 2)
        })
        .cloned()
        .collect();
    assert_eq!(sorted(got), want_f);
    // With a limit: that many, all distinct.
    let got = Row::scan(&db)
        .segments(4)
        .concurrency(2)
        .page_size(8)
        .limit(37)
        .all()
        .await
        .unwrap();
    let got = sorted(got);
    assert_eq!(got.len(), 37);
    assert!(got.windows(2).all(|w| w[0] != w[1]));
    // Scan of a projection in parallel.
    #[derive(Deserialize)]
    struct OnlyN {
        n: u32,
    }
    let ns: Vec<OnlyN> = Row::scan(&db)
        .filter(Row::PART.eq("b"))
        .project::<OnlyN>()
        .select([Row::N])
        .segments(2)
        .stream()
        .try_collect()
        .await
        .unwrap();
    let mut ns: Vec<u32> = ns.into_iter().map(|o| o.n).collect();
    ns.sort();
    assert_eq!(ns, (0..150).collect::<Vec<_>>());
}
