//! Bad queries fail before any request is sent; query filters never name key attributes.

use super::*;

// ---------------------------------------------------------------------------------------------
// Errors before any request
// ---------------------------------------------------------------------------------------------

/// Runs `find` every way (explain, all, page, stream, pages, count); each must fail with an
/// error `ok` accepts.
async fn rejected_every_way<'a, E: Entity, O: Debug + Send + 'static>(
    what: &str,
    find: impl Fn() -> Find<'a, E, O>,
    ok: impl Fn(&Error) -> bool,
) {
    let e = find().explain().unwrap_err();
    assert!(ok(&e), "{what}: explain: {e:?}");
    let e = find().all().await.unwrap_err();
    assert!(ok(&e), "{what}: all: {e:?}");
    let e = find().first().await.unwrap_err();
    assert!(ok(&e), "{what}: first: {e:?}");
    let e = find().page(None).await.unwrap_err();
    assert!(ok(&e), "{what}: page: {e:?}");
    let e = find().stream().next().await.unwrap().unwrap_err();
    assert!(ok(&e), "{what}: stream: {e:?}");
    let e = find().pages().next().await.unwrap().unwrap_err();
    assert!(ok(&e), "{what}: pages: {e:?}");
    let e = find().count().await.unwrap_err();
    assert!(ok(&e), "{what}: count: {e:?}");
}

fn invalid_query(needle: &'static str) -> impl Fn(&Error) -> bool {
    move |e| matches!(e, Error::InvalidQuery { reason, .. } if reason.contains(needle))
}

/// `segments()` on a find that is not a scan; `page()` refuses any parallel read first.
fn segments_refused(e: &Error) -> bool {
    invalid_query("segments() is for scans")(e) || invalid_query("parallel scans")(e)
}

#[tokio::test]
async fn bad_queries_fail_before_any_request() {
    let trap = Trap::new().await;
    let db = trap.client("nowhere-", None).await;

    rejected_every_way(
        "unknown index",
        || Order::find(&db).index("Nope").filter(Order::STATUS.eq("x")),
        |e| {
            matches!(e, Error::InvalidQuery { reason, .. }
                if reason.contains("`Nope`")
                    && reason.contains("ByStatus, ByStatusTotal, ByRegion, ByTotalLocal"))
        },
    )
    .await;
    rejected_every_way(
        "consistent on a global index",
        || {
            Order::find(&db)
                .index(Order::BY_STATUS)
                .filter(Order::STATUS.eq("x"))
                .consistent()
        },
        invalid_query("consistent"),
    )
    .await;
    rejected_every_way(
        "forced index not covered",
        || {
            Order::find(&db)
                .index(Order::BY_REGION)
                .filter(Order::STATUS.eq("x"))
        },
        invalid_query("`region`"),
    )
    .await;
    rejected_every_way(
        "forced index with only its sort key",
        || {
            Order::find(&db)
                .index("ByStatusTotal")
                .filter(Order::TOTAL.eq(3))
        },
        invalid_query("`status`"),
    )
    .await;
    rejected_every_way(
        "nothing covers",
        || Order::find(&db).filter(Order::NOTE.eq("x")),
        |e| {
            matches!(e, Error::ScanRequired { keys, entity }
                if *entity == "Order"
                    && keys.contains("`customer` (the table)")
                    && keys.contains("`status` (global index ByStatus)")
                    && keys.contains("`region` (global index ByRegion)"))
        },
    )
    .await;
    rejected_every_way(
        "a partition-key condition that is not equality",
        || Order::find(&db).filter(Order::CUSTOMER.begins_with("c")),
        |e| matches!(e, Error::ScanRequired { .. }),
    )
    .await;
    rejected_every_way(
        "sort key alone",
        || Order::find(&db).filter(Order::DAY.eq("d001")),
        |e| matches!(e, Error::ScanRequired { .. }),
    )
    .await;
    rejected_every_way(
        "consistent, only a global index covers",
        || Order::find(&db).filter(Order::REGION.eq("eu")).consistent(),
        |e| matches!(e, Error::ScanRequired { keys, .. } if !keys.contains("ByRegion")),
    )
    .await;
    rejected_every_way(
        "descending scan",
        || Order::scan(&db).descending().limit(3),
        invalid_query("descending"),
    )
    .await;
    rejected_every_way(
        "descending on a fallback scan",
        || {
            Order::find(&db)
                .filter(Order::NOTE.eq("x"))
                .allow_scan()
                .descending()
                .limit(3)
        },
        invalid_query("descending"),
    )
    .await;
    rejected_every_way(
        "segments on a query",
        || {
            Order::find(&db)
                .filter(Order::CUSTOMER.eq("c1"))
                .segments(2)
        },
        segments_refused,
    )
    .await;
    rejected_every_way(
        "segments on a GetItem",
        || {
            Order::find(&db)
                .filter(Order::CUSTOMER.eq("c1"))
                .filter(Order::DAY.eq("d1"))
                .segments(2)
        },
        segments_refused,
    )
    .await;
    rejected_every_way(
        "a key compared with a value of another type",
        || Order::find(&db).filter(Attr::<Order, i64>::named("customer").eq(5)),
        |e| matches!(e, Error::Validation { attribute, .. } if attribute == "customer"),
    )
    .await;
    rejected_every_way(
        "a filter a global index does not project",
        || {
            Product::find(&db)
                .filter(Product::BRAND.eq("acme"))
                .filter(Product::STOCK.gt(0))
        },
        invalid_query("stock"),
    )
    .await;

    // Checked only where they apply: all() over a scan without a limit, page() of a
    // parallel scan.
    for q in [
        Order::scan(&db),
        Order::scan(&db).filter(Order::TOTAL.gt(1)),
        Order::find(&db).filter(Order::NOTE.eq("x")).allow_scan(),
        Order::scan(&db).segments(3),
    ] {
        assert!(q.explain().is_ok());
        let e = q.all().await.unwrap_err();
        assert!(invalid_query("limit")(&e), "{e:?}");
    }
    let e = Order::scan(&db)
        .segments(2)
        .limit(5)
        .page(None)
        .await
        .unwrap_err();
    assert!(invalid_query("parallel")(&e), "{e:?}");

    assert_eq!(trap.connections(), 0, "no request may be sent");

    // The same client does send a valid find (which then fails): the checks above are
    // meaningful.
    trap.sends(Order::find(&db).filter(Order::CUSTOMER.eq("c1")))
        .await;
}

/// DynamoDB refuses a Query whose FilterExpression names a key attribute of what it queries
/// ("Filter Expression can only contain non-primary key attributes"). moto does not check
/// that, so this checks the plans: refused before sending, or no key attribute in the filter.
#[tokio::test]
async fn query_filters_never_name_key_attributes() {
    let trap = Trap::new().await;
    let db = trap.client("plans-", None).await;
    let c1 = || Order::find(&db).filter(Order::CUSTOMER.eq("c1"));
    let finds: Vec<(&str, Find<'_, Order>)> = vec![
        ("sort key <>", c1().filter(Order::DAY.ne("d001"))),
        (
            "two sort-key conditions",
            c1().filter(Order::DAY.ge("d001"))
                .filter(Order::DAY.lt("d009")),
        ),
        (
            "sort key IN",
            c1().filter(Order::DAY.is_in(["d001", "d002"])),
        ),
        (
            "sort key in an OR",
            c1().filter(Order::DAY.eq("d001").or(Order::NOTE.eq("x"))),
        ),
        ("partition key twice", c1().filter(Order::CUSTOMER.ne("c2"))),
        (
            "index sort key <>",
            Order::find(&db)
                .filter(Order::STATUS.eq("open"))
                .filter(Order::PLACED.ne(1000)),
        ),
    ];
    for (what, find) in finds {
        match find.explain() {
            Err(Error::InvalidQuery { .. }) => {}
            Ok(plan) if plan.operation == Operation::Query => {
                let filter = plan.filter.clone().unwrap_or_default();
                for key in ["customer", "day", "status", "placed"] {
                    assert!(!filter.contains(key), "{what}: {plan}");
                }
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(trap.connections(), 0);
}
