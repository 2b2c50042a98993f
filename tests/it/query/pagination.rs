//! Limits, pages and streams: limits under selective filters, resuming by cursor, every page,
//! dropping a stream.

use super::*;

#[tokio::test]
async fn limit_with_a_selective_filter_reads_pages_until_enough_matched() {
    let db = setup::<Row>().await;
    let data: Vec<Row> = (0..600u32)
        .map(|n| Row {
            part: "p".into(),
            n,
            v: if n % 50 == 7 { 1 } else { 0 },
        })
        .collect();
    batch_put(&db, &data).await;
    let matches: Vec<u32> = data.iter().filter(|r| r.v == 1).map(|r| r.n).collect();
    assert_eq!(matches.len(), 12);

    let capture = Capture::default();
    let _guard = capture.install();
    let q = || {
        Row::find(&db)
            .filter(Row::PART.eq("p"))
            .filter(Row::V.eq(1))
            .page_size(25)
    };
    let got = q().limit(5).all().await.unwrap();
    assert_eq!(ns(&got), matches[..5]);
    // The 5th match is item 207: pages of 25 up to it are 9, and no more are read.
    assert_eq!(capture.count("Query"), 9);

    // page(): the same 5, and the cursor resumes right after the 5th match.
    capture.clear();
    let page = q().limit(5).page(None).await.unwrap();
    assert_eq!(ns(&page.items), matches[..5]);
    assert_eq!(capture.count("Query"), 9);
    let page = q().limit(5).page(page.next.unwrap()).await.unwrap();
    assert_eq!(ns(&page.items), matches[5..10]);
    let page = q().limit(5).page(page.next.unwrap()).await.unwrap();
    assert_eq!(ns(&page.items), matches[10..]);
    assert_eq!(page.next, None);

    // first(), the stream and count with the same filter.
    assert_eq!(q().first().await.unwrap().map(|r| r.n), Some(7));
    let streamed: Vec<Row> = q().limit(5).stream().try_collect().await.unwrap();
    assert_eq!(ns(&streamed), matches[..5]);
    assert_eq!(q().count().await.unwrap(), 12);
    assert_eq!(q().limit(5).count().await.unwrap(), 5);
    // Without a page size (one request reads as much as fits): same items.
    let got = Row::find(&db)
        .filter(Row::PART.eq("p"))
        .filter(Row::V.eq(1))
        .limit(5)
        .all()
        .await
        .unwrap();
    assert_eq!(ns(&got), matches[..5]);
    // Descending: the last 5 matches, last first.
    let got = q().descending().limit(5).all().await.unwrap();
    let want: Vec<u32> = matches.iter().rev().take(5).copied().collect();
    assert_eq!(ns(&got), want);
    // A limit larger than the matches: all of them, and no cursor.
    let page = q().limit(50).page(None).await.unwrap();
    assert_eq!(ns(&page.items), matches);
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn resume_by_cursor_over_2500_items() {
    const N: u32 = 2_500;
    let db = setup::<Row>().await;
    let data = rows("p", N);
    batch_put(&db, &data).await;
    let all: Vec<u32> = (0..N).collect();
    let filtered: Vec<u32> = data.iter().filter(|r| r.v < 3).map(|r| r.n).collect();
    assert_eq!(filtered.len(), 750);
    let rev: Vec<u32> = all.iter().rev().copied().collect();
    let plain = || Row::find(&db).filter(Row::PART.eq("p"));
    let with_filter = || plain().filter(Row::V.lt(3));

    // .limit(k).page(cursor) loops; 333 divides neither 2,500 nor 750.
    assert_eq!(ns(&page_loop(333, plain).await), all);
    assert_eq!(ns(&page_loop(333, with_filter).await), filtered);
    assert_eq!(
        ns(&page_loop(333, || with_filter().page_size(400)).await),
        filtered
    );
    assert_eq!(ns(&page_loop(333, || plain().descending()).await), rev);

    // pages(): one DynamoDB page at a time; every page's cursor resumes after it.
    let pages: Vec<_> = plain().page_size(333).pages().try_collect().await.unwrap();
    assert_eq!(pages.len(), 8);
    assert!(pages[..7]
        .iter()
        .all(|p| p.items.len() == 333 && p.next.is_some()));
    assert_eq!(pages[7].next, None);
    let flat: Vec<u32> = pages.iter().flat_map(|p| ns(&p.items)).collect();
    assert_eq!(flat, all);
    // A page's cursor, given back to page(), continues with the next page's items.
    let resumed = plain()
        .limit(333)
        .page(pages[3].next.clone().unwrap())
        .await
        .unwrap();
    assert_eq!(resumed.items, pages[4].items);
    let pages: Vec<_> = with_filter()
        .page_size(333)
        .pages()
        .try_collect()
        .await
        .unwrap();
    // Every page holds a match, but the last may be empty (its DynamoDB page had none).
    assert!(pages[..pages.len() - 1].iter().all(|p| !p.items.is_empty()));
    assert_eq!(pages.last().unwrap().next, None);
    let flat: Vec<u32> = pages.iter().flat_map(|p| ns(&p.items)).collect();
    assert_eq!(flat, filtered);

    // stream(), with and without a filter, both orders.
    let streamed: Vec<Row> = plain().page_size(333).stream().try_collect().await.unwrap();
    assert_eq!(ns(&streamed), all);
    let streamed: Vec<Row> = with_filter()
        .page_size(500)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns(&streamed), filtered);
    let streamed: Vec<Row> = plain()
        .descending()
        .page_size(333)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns(&streamed), rev);
    // A stream with a limit, after a cursor.
    let cursor = plain().limit(1000).page(None).await.unwrap().next.unwrap();
    let streamed: Vec<Row> = plain()
        .after(cursor)
        .limit(700)
        .page_size(333)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns(&streamed), all[1000..1700]);
}

/// The same in pages of 7, over fewer items (moto sorts the whole partition on every request,
/// ~60-90 ms at 2,500 items: 358 pages of 7 would take half a minute).
#[tokio::test]
async fn resume_by_cursor_in_pages_of_7() {
    const N: u32 = 400;
    let db = setup::<Row>().await;
    let data = rows("p", N);
    batch_put(&db, &data).await;
    let all: Vec<u32> = (0..N).collect();
    let filtered: Vec<u32> = data.iter().filter(|r| r.v < 3).map(|r| r.n).collect();
    assert_eq!(filtered.len(), 120);
    let rev: Vec<u32> = all.iter().rev().copied().collect();
    let rev_f: Vec<u32> = filtered.iter().rev().copied().collect();
    let plain = || Row::find(&db).filter(Row::PART.eq("p"));
    let with_filter = || plain().filter(Row::V.lt(3));

    // 7 divides neither 400 nor 120.
    assert_eq!(ns(&page_loop(7, plain).await), all);
    assert_eq!(ns(&page_loop(7, with_filter).await), filtered);
    assert_eq!(
        ns(&page_loop(7, || with_filter().page_size(10)).await),
        filtered
    );
    assert_eq!(
        ns(&page_loop(7, || with_filter().descending().page_size(10)).await),
        rev_f
    );
    assert_eq!(ns(&page_loop(7, || plain().descending()).await), rev);

    let pages: Vec<_> = plain().page_size(7).pages().try_collect().await.unwrap();
    assert_eq!(pages.len(), 58);
    assert!(pages[..57]
        .iter()
        .all(|p| p.items.len() == 7 && p.next.is_some()));
    assert_eq!((pages[57].items.len(), &pages[57].next), (1, &None));
    let flat: Vec<u32> = pages.iter().flat_map(|p| ns(&p.items)).collect();
    assert_eq!(flat, all);
    let pages: Vec<_> = with_filter()
        .page_size(7)
        .pages()
        .try_collect()
        .await
        .unwrap();
    // Every page holds a match, but the last may be empty (its DynamoDB page had none).
    assert!(pages[..pages.len() - 1].iter().all(|p| !p.items.is_empty()));
    assert_eq!(pages.last().unwrap().next, None);
    let flat: Vec<u32> = pages.iter().flat_map(|p| ns(&p.items)).collect();
    assert_eq!(flat, filtered);

    let streamed: Vec<Row> = plain().page_size(7).stream().try_collect().await.unwrap();
    assert_eq!(ns(&streamed), all);
    let streamed: Vec<Row> = with_filter()
        .page_size(7)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns(&streamed), filtered);
    let streamed: Vec<Row> = with_filter()
        .descending()
        .page_size(7)
        .stream()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns(&streamed), rev_f);
}

/// `pages()` documents its pages as `page()` returns them; with a limit, `page()` returns
/// pages of that many items and a cursor to the rest.
#[tokio::test]
async fn pages_with_a_limit_yields_every_page() {
    let db = setup::<Row>().await;
    let data = rows("p", 40);
    put_all(&db, &data).await;
    let q = || Row::find(&db).filter(Row::PART.eq("p"));
    let pages: Vec<_> = q().limit(7).pages().try_collect().await.unwrap();
    let looped = page_loop(7, q).await;
    assert_eq!(pages.len(), 6, "40 items in pages of 7");
    let flat: Vec<Row> = pages.into_iter().flat_map(|p| p.items).collect();
    assert_eq!(flat, looped);
}

#[tokio::test]
async fn dropping_a_stream_stops_reading() {
    let db = setup::<Row>().await;
    let data = rows("p", 300);
    batch_put(&db, &data).await;
    let capture = Capture::default();
    let _guard = capture.install();

    let mut stream = Row::find(&db)
        .filter(Row::PART.eq("p"))
        .page_size(10)
        .stream()
        .boxed();
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(stream.next().await.unwrap().unwrap().n);
    }
    drop(stream);
    assert_eq!(first, vec![0, 1, 2]);
    // Give anything left running a chance to run (nothing should).
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let queries = capture.count("Query");
    assert!(
        (1..=2).contains(&queries),
        "one page plus at most one page of read-ahead, not {queries} requests"
    );

    // Same with take(3) on a filtered stream.
    capture.clear();
    let got: Vec<Row> = Row::find(&db)
        .filter(Row::PART.eq("p"))
        .filter(Row::V.ne(99))
        .page_size(10)
        .stream()
        .take(3)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(ns(&got), vec![0, 1, 2]);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(capture.count("Query") <= 2, "{}", capture.count("Query"));
}
