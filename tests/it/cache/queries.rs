//! The query cache: results of one partition cached until a write to that partition (index
//! queries and scans until a write to the table); key separation between tables, entities,
//! projections and binary keys.

use super::*;

#[tokio::test]
async fn query_results_are_cached_until_a_write_to_the_table() {
    install();
    let base = plain().await;
    QDoc::create_table(&base).await.unwrap();
    Doc::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let mut items: Vec<QDoc> = (1..=5).map(|n| qdoc("p", n, &format!("p{n}"))).collect();
    items.extend((1..=3).map(|n| qdoc("q", n, &format!("q{n}"))));
    base.batch_write().put_all(&items).await.unwrap();
    let queries = || requests(&db, "Query");
    let p = || QDoc::find(&db).filter(QDoc::ID.eq("p"));
    let bodies = |v: &[QDoc]| v.iter().map(|d| d.body.clone()).collect::<Vec<_>>();

    // The second identical query is served without a request.
    let q0 = queries();
    let first = p().all().await.unwrap();
    assert_eq!(bodies(&first), ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(p().all().await.unwrap(), first);
    assert_eq!(queries() - q0, 1);

    // Variants never share an entry: each returns its own result, cached on its own.
    let page1 = p().limit(2).page(None).await.unwrap();
    let page2 = p().limit(2).page(page1.next.clone()).await.unwrap();
    let variants: Vec<(&str, Vec<String>)> = vec![
        ("limit 2", bodies(&p().limit(2).all().await.unwrap())),
        ("limit 3", bodies(&p().limit(3).all().await.unwrap())),
        (
            "first",
            bodies(&p().first().await.unwrap().into_iter().collect::<Vec<_>>()),
        ),
        ("page 1", bodies(&page1.items)),
        ("page 2", bodies(&page2.items)),
        ("descending", bodies(&p().descending().all().await.unwrap())),
        (
            "n >= 4",
            bodies(&p().filter(QDoc::N.ge(4)).all().await.unwrap()),
        ),
        (
            "body filter",
            bodies(&p().filter(QDoc::BODY.eq("p2")).all().await.unwrap()),
        ),
        (
            "other partition",
            bodies(
                &QDoc::find(&db)
                    .filter(QDoc::ID.eq("q"))
                    .all()
                    .await
                    .unwrap(),
            ),
        ),
    ];
    let expected: Vec<Vec<&str>> = vec![
        vec!["p1", "p2"],
        vec!["p1", "p2", "p3"],
        vec!["p1"],
        vec!["p1", "p2"],
        vec!["p3", "p4"],
        vec!["p5", "p4", "p3", "p2", "p1"],
        vec!["p4", "p5"],
        vec!["p2"],
        vec!["q1", "q2", "q3"],
    ];
    for ((name, got), want) in variants.iter().zip(&expected) {
        assert_eq!(got, want, "{name}");
    }
    let projected = p().select([QDoc::BODY]).all().await.unwrap();
    assert!(projected.iter().all(|d| d.note.is_empty()), "{projected:?}");
    assert_eq!(bodies(&projected), bodies(&first));
    let projected_note = p().select([QDoc::NOTE]).all().await.unwrap();
    assert!(projected_note
        .iter()
        .all(|d| d.body.is_empty() && !d.note.is_empty()));
    let q1 = queries();
    // Every variant again: all from the cache, same answers.
    let again = p().limit(2).page(None).await.unwrap();
    assert_eq!(again.items, page1.items);
    let again2 = p().limit(2).page(again.next.clone()).await.unwrap();
    assert_eq!(again2.items, page2.items);
    assert_eq!(bodies(&p().limit(2).all().await.unwrap()), expected[0]);
    assert_eq!(bodies(&p().limit(3).all().await.unwrap()), expected[1]);
    assert_eq!(bodies(&p().descending().all().await.unwrap()), expected[5]);
    assert_eq!(p().select([QDoc::BODY]).all().await.unwrap(), projected);
    assert_eq!(
        p().select([QDoc::NOTE]).all().await.unwrap(),
        projected_note
    );
    assert_eq!(queries(), q1, "all served from the query cache");

    // .no_cache() and consistent reads go to DynamoDB every time.
    assert_eq!(p().no_cache().all().await.unwrap(), first);
    assert_eq!(p().no_cache().all().await.unwrap(), first);
    assert_eq!(p().consistent().all().await.unwrap(), first);
    assert_eq!(queries() - q1, 3);

    // A write drops the query results of its own partition only: "p" stays cached, "q" is
    // read again and shows the new item.
    qdoc("q", 9, "q9").put(&db).await.unwrap();
    let q2 = queries();
    assert_eq!(p().all().await.unwrap(), first);
    assert_eq!(queries() - q2, 0, "another partition's results stay cached");
    let q = QDoc::find(&db)
        .filter(QDoc::ID.eq("q"))
        .all()
        .await
        .unwrap();
    assert_eq!(bodies(&q), ["q1", "q2", "q3", "q9"]);
    assert_eq!(
        queries() - q2,
        1,
        "re-read after the write to its partition"
    );
    // Scans (like index queries) may hold items of any partition: any write drops them.
    let scan = || QDoc::scan(&db).cached().unbounded();
    assert_eq!(scan().all().await.unwrap().len(), 9);
    let scans = || requests(&db, "Scan");
    let s0 = scans();
    assert_eq!(scan().all().await.unwrap().len(), 9);
    assert_eq!(scans(), s0, "cached");
    qdoc("p", 9, "p9").put(&db).await.unwrap();
    assert_eq!(scan().all().await.unwrap().len(), 10);
    assert_eq!(scans() - s0, 1, "re-read after a write to any partition");
    QDoc::delete(&db, QDoc::key("p", 9)).await.unwrap();
    assert_eq!(p().all().await.unwrap(), first);
    // And a write to a listed item shows in the next query.
    QDoc::update(&db, QDoc::key("p", 3))
        .set(QDoc::BODY, "p3'")
        .await
        .unwrap();
    assert_eq!(bodies(&p().all().await.unwrap())[2], "p3'");
    assert_eq!(bodies(&page2_of(&db).await)[0], "p3'");

    // Without the entity's opt-in: only with .cached().
    base.batch_write()
        .put(&doc("d", 1, "one"))
        .put(&doc("d", 2, "two"))
        .await
        .unwrap();
    let d = || Doc::find(&db).filter(Doc::ID.eq("d"));
    let q3 = queries();
    assert_eq!(d().all().await.unwrap().len(), 2);
    assert_eq!(d().all().await.unwrap().len(), 2);
    assert_eq!(queries() - q3, 2, "not cached by default");
    assert_eq!(d().cached().all().await.unwrap().len(), 2);
    assert_eq!(d().cached().all().await.unwrap().len(), 2);
    assert_eq!(queries() - q3, 3, "cached with .cached()");
    doc("d", 3, "three").put(&db).await.unwrap();
    assert_eq!(d().cached().all().await.unwrap().len(), 3);
}

async fn page2_of(db: &Client) -> Vec<QDoc> {
    let p = || QDoc::find(db).filter(QDoc::ID.eq("p")).limit(2);
    let first = p().page(None).await.unwrap();
    p().page(first.next).await.unwrap().items
}

#[tokio::test]
async fn binary_key_queries_do_not_share_cache_entries() {
    let base = setup::<Event>().await;
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    for (stream, payload) in [(vec![1u8, 2], "one-two"), (vec![3u8, 4], "three-four")] {
        Event {
            stream: Binary(stream),
            seq: 1,
            payload: payload.into(),
        }
        .put(&db)
        .await
        .unwrap();
    }
    let read = |s: Vec<u8>| Event::find(&db).filter(Event::STREAM.eq(Binary(s))).all();
    let a = read(vec![1, 2]).await.unwrap();
    assert_eq!(a[0].payload, "one-two");
    let direct = Event::find(&db)
        .filter(Event::STREAM.eq(Binary(vec![3, 4])))
        .no_cache()
        .all()
        .await
        .unwrap();
    assert_eq!(direct[0].payload, "three-four");
    let b = read(vec![3, 4]).await.unwrap();
    assert_eq!(
        b, direct,
        "the query for stream [3, 4] got another query's cached result"
    );
}

#[tokio::test]
async fn keys_of_tables_entities_and_projections_never_collide() {
    install();
    // Two tables (two prefixes) with the same item key, over one shared cache.
    let shared = Tiered::new().layer(MokaLayer::new(MB));
    let base1 = plain().await;
    let base2 = plain().await;
    Doc::create_table(&base1).await.unwrap();
    Doc::create_table(&base2).await.unwrap();
    let db1 = with_cache(&base1, shared.clone(), moka_config());
    let db2 = with_cache(&base2, shared.clone(), moka_config());
    doc("k", 1, "table one").put(&db1).await.unwrap();
    doc("k", 1, "table two").put(&db2).await.unwrap();
    for _ in 0..2 {
        for (db, want) in [(&db1, "table one"), (&db2, "table two")] {
            let got = Doc::get(db, Doc::key("k", 1)).await.unwrap().unwrap();
            assert_eq!(got.body, want);
            let found = Doc::find(db)
                .filter(Doc::ID.eq("k"))
                .cached()
                .all()
                .await
                .unwrap();
            assert_eq!(found[0].body, want);
        }
    }
    assert_eq!(requests(&db1, "GetItem"), 1);
    assert_eq!(requests(&db2, "GetItem"), 1);
    assert_eq!(requests(&db1, "Query"), 1);
    assert_eq!(requests(&db2, "Query"), 1);
    // A write to one table leaves the other's entries alone.
    doc("k", 1, "table one'").put(&db1).await.unwrap();
    assert_eq!(
        Doc::get(&db2, Doc::key("k", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "table two"
    );
    assert_eq!(requests(&db2, "GetItem"), 1);
    assert_eq!(
        Doc::get(&db1, Doc::key("k", 1))
            .await
            .unwrap()
            .unwrap()
            .body,
        "table one'"
    );

    // Two entities reading the same items of one table.
    let base = plain().await;
    Alpha::create_table(&base).await.unwrap();
    let db = with_cache(&base, MokaLayer::new(MB), moka_config());
    let beta = Beta {
        id: "x".into(),
        n: 1,
        label: "b".into(),
        size: 7,
    };
    beta.put(&db).await.unwrap();
    let alpha = Alpha {
        id: "x".into(),
        n: 1,
        label: "b".into(),
    };
    for _ in 0..2 {
        assert_eq!(
            Alpha::get(&db, Alpha::key("x", 1)).await.unwrap(),
            Some(alpha.clone())
        );
        assert_eq!(
            Beta::get(&db, Beta::key("x", 1)).await.unwrap(),
            Some(beta.clone())
        );
        let a = Alpha::find(&db)
            .filter(Alpha::ID.eq("x"))
            .all()
            .await
            .unwrap();
        assert_eq!(a, vec![alpha.clone()]);
        let b = Beta::find(&db)
            .filter(Beta::ID.eq("x"))
            .all()
            .await
            .unwrap();
        assert_eq!(b, vec![beta.clone()]);
    }
    assert_eq!(requests(&db, "GetItem"), 2);
    assert_eq!(requests(&db, "Query"), 2);
    // A write through one entity drops the other's entries of the same item.
    Alpha::update(&db, Alpha::key("x", 1))
        .set(Alpha::LABEL, "a2")
        .await
        .unwrap();
    assert_eq!(
        Beta::get(&db, Beta::key("x", 1))
            .await
            .unwrap()
            .unwrap()
            .label,
        "a2"
    );
    let b = Beta::find(&db)
        .filter(Beta::ID.eq("x"))
        .all()
        .await
        .unwrap();
    assert_eq!(b[0].label, "a2");
    assert_eq!(b[0].size, 7);

    // Projections of one item.
    let a = doc("p", 1, "body");
    a.put(&db1).await.unwrap();
    let g = requests(&db1, "GetItem");
    for _ in 0..2 {
        let full = Doc::get(&db1, Doc::key("p", 1)).await.unwrap().unwrap();
        assert_eq!(full, a);
        let body = Doc::get(&db1, Doc::key("p", 1))
            .select([Doc::ID, Doc::BODY])
            .select_attr(Doc::N)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((body.body.as_str(), body.note.as_str()), ("body", ""));
        let note = Doc::get(&db1, Doc::key("p", 1))
            .select([Doc::ID, Doc::NOTE])
            .select_attr(Doc::N)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (note.body.as_str(), note.note.as_str()),
            ("", a.note.as_str())
        );
    }
    assert_eq!(
        requests(&db1, "GetItem") - g,
        3,
        "each projection cached on its own"
    );
    Doc::update(&db1, Doc::key("p", 1))
        .set(Doc::NOTE, "new note")
        .await
        .unwrap();
    let note = Doc::get(&db1, Doc::key("p", 1))
        .select([Doc::ID, Doc::NOTE])
        .select_attr(Doc::N)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        note.note, "new note",
        "every projection of the item was dropped"
    );
    let full = Doc::get(&db1, Doc::key("p", 1)).await.unwrap().unwrap();
    assert_eq!(full.note, "new note");
}
