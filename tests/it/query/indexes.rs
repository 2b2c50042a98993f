//! Index choice: automatic (most key conditions, then declaration order), forced by name or
//! handle, local indexes, and consistent reads that skip global indexes.

use super::*;

#[tokio::test]
async fn auto_chosen_global_index() {
    let (db, data) = order_db().await;
    // Only the region is given: the one index keyed by it.
    let q = || Order::find(&db).filter(Order::REGION.eq("us"));
    let plan = q().explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(plan.index, Some("ByRegion"));
    assert_eq!(plan.key_condition.as_deref(), Some(r#"region = "us""#));
    assert_eq!(plan.filter, None);
    assert!(!plan.fetches_base_items, "projection = all");
    assert!(plan.reason.contains("ByRegion"), "{}", plan.reason);
    let mut got = keys(&q().all().await.unwrap());
    got.sort();
    assert_eq!(got, expect(&data, |o| o.region == "us", |o| o.day.clone()));

    // With a filter on the index and one on a non-key attribute.
    let q = || {
        Order::find(&db)
            .filter(Order::STATUS.eq("open"))
            .filter(Order::PLACED.ge(1010))
            .filter(Order::NOTE.begins_with("note"))
    };
    let plan = q().explain().unwrap();
    assert_eq!(plan.index, Some("ByStatus"));
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"status = "open" AND placed >= 1010"#)
    );
    assert_eq!(plan.filter.as_deref(), Some(r#"begins_with(note, "note")"#));
    assert_eq!(
        keys(&q().all().await.unwrap()),
        expect(
            &data,
            |o| o.status == "open" && o.placed >= 1010 && o.note.starts_with("note"),
            |o| o.placed
        )
    );
    // `=` on an index sort key.
    let q = Order::find(&db)
        .filter(Order::STATUS.eq("open"))
        .filter(Order::PLACED.eq(1003));
    assert_eq!(
        q.explain().unwrap().key_condition.as_deref(),
        Some(r#"status = "open" AND placed = 1003"#)
    );
    assert_eq!(q.all().await.unwrap(), vec![data[3].clone()]);
}

#[tokio::test]
async fn index_choice_most_key_conditions_then_declaration_order() {
    let (db, data) = order_db().await;
    let shipped = |o: &Order| o.status == "shipped";

    // Both ByStatus and ByStatusTotal cover `status =` alone: the first declared wins.
    let q = Order::find(&db).filter(Order::STATUS.eq("shipped"));
    let plan = q.explain().unwrap();
    assert_eq!(plan.index, Some("ByStatus"));
    assert!(plan.reason.contains("1 condition"), "{}", plan.reason);
    assert_eq!(
        keys(&q.all().await.unwrap()),
        expect(&data, shipped, |o| o.placed)
    );

    // ByStatusTotal also takes the condition on `total` into its key: 2 beats 1.
    let q = || {
        Order::find(&db)
            .filter(Order::STATUS.eq("shipped"))
            .filter(Order::TOTAL.lt(50))
    };
    let plan = q().explain().unwrap();
    assert_eq!(plan.index, Some("ByStatusTotal"));
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"status = "shipped" AND total < 50"#)
    );
    assert_eq!(plan.filter, None);
    assert!(plan.reason.contains("2 condition"), "{}", plan.reason);
    assert_eq!(
        keys(&q().all().await.unwrap()),
        expect(&data, |o| shipped(o) && o.total < 50, |o| o.total)
    );

    // And ByStatus with its own sort-key condition: 2 beats 1 the other way.
    let q = Order::find(&db)
        .filter(Order::STATUS.eq("shipped"))
        .filter(Order::PLACED.lt(1015));
    assert_eq!(q.explain().unwrap().index, Some("ByStatus"));
    assert_eq!(
        keys(&q.all().await.unwrap()),
        expect(&data, |o| shipped(o) && o.placed < 1015, |o| o.placed)
    );

    // Both cover 2: declaration order again; the other condition filters.
    let q = Order::find(&db)
        .filter(Order::TOTAL.lt(50))
        .filter(Order::STATUS.eq("shipped"))
        .filter(Order::PLACED.lt(1015));
    let plan = q.explain().unwrap();
    assert_eq!(plan.index, Some("ByStatus"));
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"status = "shipped" AND placed < 1015"#)
    );
    assert_eq!(plan.filter.as_deref(), Some("total < 50"));
    assert_eq!(
        keys(&q.all().await.unwrap()),
        expect(
            &data,
            |o| shipped(o) && o.placed < 1015 && o.total < 50,
            |o| o.placed
        )
    );

    // Status and region both given: ByStatus (declared before ByRegion) wins the tie.
    let q = Order::find(&db)
        .filter(Order::REGION.eq("eu"))
        .filter(Order::STATUS.eq("open"));
    let plan = q.explain().unwrap();
    assert_eq!(plan.index, Some("ByStatus"));
    assert_eq!(plan.filter.as_deref(), Some(r#"region = "eu""#));
    assert_eq!(
        keys(&q.all().await.unwrap()),
        expect(
            &data,
            |o| o.status == "open" && o.region == "eu",
            |o| o.placed
        )
    );
}

/// The planner never picks a local index by itself: a local index is keyed by the table's
/// partition key, and rule 3 prefers the table whenever that key is given. Forced, it works.
#[tokio::test]
async fn local_index_forced_and_table_preferred_when_auto() {
    let (db, data) = order_db().await;
    let c1_mid = |o: &Order| o.customer == "c1" && (20..=60).contains(&o.total);

    let auto = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::TOTAL.between(20, 60));
    let plan = auto.explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(plan.index, None, "the table wins over the local index");
    assert_eq!(plan.key_condition.as_deref(), Some(r#"customer = "c1""#));
    assert_eq!(plan.filter.as_deref(), Some("total BETWEEN 20 AND 60"));
    assert_eq!(
        keys(&auto.all().await.unwrap()),
        expect(&data, c1_mid, |o| o.day.clone())
    );

    let forced = || {
        Order::find(&db)
            .index(Order::BY_TOTAL_LOCAL)
            .filter(Order::CUSTOMER.eq("c1"))
            .filter(Order::TOTAL.between(20, 60))
    };
    let plan = forced().explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(plan.index, Some("ByTotalLocal"));
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"customer = "c1" AND total BETWEEN 20 AND 60"#)
    );
    assert_eq!(plan.filter, None);
    assert!(!plan.fetches_base_items);
    assert!(plan.reason.contains("local index"), "{}", plan.reason);
    let want = expect(&data, c1_mid, |o| o.total);
    assert_eq!(keys(&forced().all().await.unwrap()), want);
    // Consistent reads are fine on a local index.
    assert_eq!(keys(&forced().consistent().all().await.unwrap()), want);
    // Paged through the local index (cursors carry the index key too).
    assert_eq!(keys(&page_loop(2, forced).await), want);
}

#[tokio::test]
async fn forced_index_by_name_and_by_handle() {
    let (db, data) = order_db().await;
    let want = expect(&data, |o| o.status == "closed", |o| o.total);
    let by_name = Order::find(&db)
        .index("ByStatusTotal")
        .filter(Order::STATUS.eq("closed"));
    let by_string = Order::find(&db)
        .index(String::from("ByStatusTotal"))
        .filter(Order::STATUS.eq("closed"));
    let by_handle = Order::find(&db)
        .index(Order::BY_STATUS_TOTAL)
        .filter(Order::STATUS.eq("closed"));
    for q in [by_name, by_string, by_handle] {
        let plan = q.explain().unwrap();
        assert_eq!(plan.operation, Operation::Query);
        assert_eq!(plan.index, Some("ByStatusTotal"));
        assert_eq!(plan.key_condition.as_deref(), Some(r#"status = "closed""#));
        assert!(plan.reason.contains("asked for"), "{}", plan.reason);
        assert_eq!(keys(&q.all().await.unwrap()), want);
    }

    // Forced, with a condition on another index's sort key: it filters.
    let q = Order::find(&db)
        .index(Order::BY_STATUS_TOTAL)
        .filter(Order::STATUS.eq("closed"))
        .filter(Order::PLACED.gt(1010));
    let plan = q.explain().unwrap();
    assert_eq!(plan.key_condition.as_deref(), Some(r#"status = "closed""#));
    assert_eq!(plan.filter.as_deref(), Some("placed > 1010"));
    assert_eq!(
        keys(&q.all().await.unwrap()),
        expect(
            &data,
            |o| o.status == "closed" && o.placed > 1010,
            |o| o.total
        )
    );

    // Forced and not covered, but scans allowed: a scan of that index.
    let q = Order::find(&db)
        .index(Order::BY_REGION)
        .filter(Order::STATUS.eq("closed"))
        .allow_scan()
        .unbounded();
    let plan = q.explain().unwrap();
    assert_eq!(plan.operation, Operation::Scan);
    assert_eq!(plan.index, Some("ByRegion"));
    assert_eq!(plan.key_condition, None);
    assert_eq!(plan.filter.as_deref(), Some(r#"status = "closed""#));
    assert!(plan.reason.contains("region"), "{}", plan.reason);
    let mut got = keys(&q.all().await.unwrap());
    got.sort();
    assert_eq!(
        got,
        expect(
            &data,
            |o| o.status == "closed",
            |o| (o.customer.clone(), o.day.clone())
        )
    );
}

#[tokio::test]
async fn consistent_reads_skip_global_indexes() {
    let (db, data) = order_db().await;
    // Without consistent(): the global index. With it: no index serves, so a scan when allowed.
    let q = || Order::find(&db).filter(Order::STATUS.eq("open"));
    assert_eq!(q().explain().unwrap().index, Some("ByStatus"));
    let q = || q().consistent().allow_scan().unbounded();
    let plan = q().explain().unwrap();
    assert_eq!(plan.operation, Operation::Scan);
    assert_eq!(plan.index, None);
    assert_eq!(plan.filter.as_deref(), Some(r#"status = "open""#));
    assert!(plan.reason.contains("scans are allowed"), "{}", plan.reason);
    let mut got = keys(&q().all().await.unwrap());
    got.sort();
    assert_eq!(
        got,
        expect(
            &data,
            |o| o.status == "open",
            |o| (o.customer.clone(), o.day.clone())
        )
    );
    // Without allow_scan: ScanRequired, naming only what a consistent read can use.
    let err = Order::find(&db)
        .filter(Order::STATUS.eq("open"))
        .consistent()
        .explain()
        .unwrap_err();
    match &err {
        Error::ScanRequired { keys, .. } => {
            assert!(keys.contains("`customer` (the table)"), "{keys}");
            assert!(!keys.contains("global index"), "{keys}");
            assert!(keys.contains("local index ByTotalLocal"), "{keys}");
        }
        other => panic!("{other:?}"),
    }
    // A consistent read of the table itself is a consistent Query.
    let q = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c2"))
        .consistent();
    assert_eq!(q.explain().unwrap().index, None);
    assert_eq!(q.all().await.unwrap().len(), 10);
}
