//! Key conditions: GetItem for the whole key, table queries with each sort-key condition,
//! sort-key conditions plus filters.

use super::*;

#[tokio::test]
async fn get_item_for_equality_on_the_whole_key_only() {
    let (db, data) = order_db().await;
    let q = || {
        Order::find(&db)
            .filter(Order::CUSTOMER.eq("c1"))
            .filter(Order::DAY.eq("d005"))
    };
    let plan = q().explain().unwrap();
    assert_eq!(plan.operation, Operation::GetItem);
    assert_eq!(plan.index, None);
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"customer = "c1" AND day = "d005""#)
    );
    assert_eq!(plan.filter, None);
    assert!(!plan.fetches_base_items);
    assert!(!plan.reason.is_empty());
    assert_eq!(q().all().await.unwrap(), vec![data[5].clone()]);
    assert_eq!(q().first().await.unwrap(), Some(data[5].clone()));
    let page = q().page(None).await.unwrap();
    assert_eq!((page.items.len(), page.next), (1, None));
    assert_eq!(q().count().await.unwrap(), 1);
    assert_eq!(q().consistent().all().await.unwrap(), vec![data[5].clone()]);

    // The key in the other order is the same GetItem.
    let swapped = Order::find(&db)
        .filter(Order::DAY.eq("d005"))
        .filter(Order::CUSTOMER.eq("c1"));
    assert_eq!(swapped.explain().unwrap().operation, Operation::GetItem);

    // A missing item: nothing.
    let none = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::DAY.eq("d999"));
    assert_eq!(none.all().await.unwrap(), vec![]);

    // The whole key and one more condition: no longer a GetItem.
    let more = q().filter(Order::NOTE.eq("note 5"));
    let plan = more.explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"customer = "c1" AND day = "d005""#)
    );
    assert_eq!(plan.filter.as_deref(), Some(r#"note = "note 5""#));
    assert_eq!(more.all().await.unwrap(), vec![data[5].clone()]);
    let miss = q().filter(Order::NOTE.eq("note 6"));
    assert_eq!(miss.all().await.unwrap(), vec![]);
}

#[tokio::test]
async fn table_query_with_each_sort_key_condition() {
    let (db, data) = order_db().await;
    let c1 = |o: &Order| o.customer == "c1";
    type Case = (
        &'static str,
        Condition<Order>,
        &'static str,
        Box<dyn Fn(&str) -> bool>,
    );
    let cases: Vec<Case> = vec![
        (
            "lt",
            Order::DAY.lt("d004"),
            r#"day < "d004""#,
            Box::new(|d| d < "d004"),
        ),
        (
            "le",
            Order::DAY.le("d004"),
            r#"day <= "d004""#,
            Box::new(|d| d <= "d004"),
        ),
        (
            "gt",
            Order::DAY.gt("d025"),
            r#"day > "d025""#,
            Box::new(|d| d > "d025"),
        ),
        (
            "ge",
            Order::DAY.ge("d025"),
            r#"day >= "d025""#,
            Box::new(|d| d >= "d025"),
        ),
        (
            "between",
            Order::DAY.between("d010", "d014"),
            r#"day BETWEEN "d010" AND "d014""#,
            Box::new(|d| ("d010"..="d014").contains(&d)),
        ),
        (
            "begins_with",
            Order::DAY.begins_with("d01"),
            r#"begins_with(day, "d01")"#,
            Box::new(|d| d.starts_with("d01")),
        ),
    ];
    for (name, cond, shown, pred) in cases {
        let q = || {
            Order::find(&db)
                .filter(Order::CUSTOMER.eq("c1"))
                .filter(cond.clone())
        };
        let plan = q().explain().unwrap();
        assert_eq!(plan.operation, Operation::Query, "{name}");
        assert_eq!(plan.index, None, "{name}");
        assert_eq!(
            plan.key_condition,
            Some(format!(r#"customer = "c1" AND {shown}"#)),
            "{name}"
        );
        assert_eq!(plan.filter, None, "{name}");
        assert!(!plan.fetches_base_items, "{name}");
        assert!(plan.reason.contains("customer"), "{name}: {}", plan.reason);
        let want = expect(&data, |o| c1(o) && pred(o.day.as_str()), |o| o.day.clone());
        assert!(!want.is_empty() && want.len() < 30, "{name}: selective");
        assert_eq!(keys(&q().all().await.unwrap()), want, "{name}");
        // Descending: the same items in reverse order.
        let mut rev = want.clone();
        rev.reverse();
        assert_eq!(keys(&q().descending().all().await.unwrap()), rev, "{name}");
    }

    // `=` on the sort key is a key condition too, once something else makes it a Query.
    let q = Order::find(&db)
        .filter(Order::CUSTOMER.eq("c1"))
        .filter(Order::DAY.eq("d007"))
        .filter(Order::NOTE.ne("nothing"));
    let plan = q.explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"customer = "c1" AND day = "d007""#)
    );
    assert_eq!(plan.filter.as_deref(), Some(r#"note <> "nothing""#));
    assert_eq!(q.all().await.unwrap(), vec![data[7].clone()]);

    // The partition key alone: the whole partition, in sort-key order.
    let all_c2 = Order::find(&db).filter(Order::CUSTOMER.eq("c2"));
    let plan = all_c2.explain().unwrap();
    assert_eq!(plan.key_condition.as_deref(), Some(r#"customer = "c2""#));
    assert_eq!(
        keys(&all_c2.all().await.unwrap()),
        expect(&data, |o| o.customer == "c2", |o| o.day.clone())
    );
}

#[tokio::test]
async fn sort_key_condition_plus_filters() {
    let (db, data) = order_db().await;
    let q = || {
        Order::find(&db)
            .filter(Order::CUSTOMER.eq("c1"))
            .filter(Order::TOTAL.gt(40))
            .filter(Order::DAY.between("d005", "d024"))
            .filter(Order::REGION.eq("eu"))
    };
    let plan = q().explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(plan.index, None);
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"customer = "c1" AND day BETWEEN "d005" AND "d024""#)
    );
    assert_eq!(
        plan.filter.as_deref(),
        Some(r#"total > 40 AND region = "eu""#)
    );
    let want = expect(
        &data,
        |o| {
            o.customer == "c1"
                && o.total > 40
                && ("d005".."d025").contains(&o.day.as_str())
                && o.region == "eu"
        },
        |o| o.day.clone(),
    );
    assert!(want.len() >= 2);
    assert_eq!(keys(&q().all().await.unwrap()), want);
    assert_eq!(q().count().await.unwrap(), want.len());
    assert_eq!(keys(&page_loop(1, q).await), want);
}
