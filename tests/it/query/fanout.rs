//! Fan-out finds: a list of partition values (`is_in`, or an OR of equalities) runs as one
//! Query per partition, merged in partition order or by sort key, with exact limits, one
//! cursor that resumes every partition exactly, counts, an index fan-out with base-item reads,
//! and the query cache per partition.

use super::*;
use dynamite::cache::{CacheConfig, MokaLayer};
use dynamite::plan::MergeOrder;
use dynamite::Page;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "feed")]
#[dynamite(global_index(name = "ByTopic", projection = keys_only))]
struct Post {
    #[dynamite(partition_key)]
    author: String,
    #[dynamite(sort_key)]
    at: u32,
    #[dynamite(index_key(index = "ByTopic", partition))]
    topic: String,
    #[dynamite(index_key(index = "ByTopic", sort))]
    score: u32,
    likes: u32,
    body: String,
}

const TOPICS: [&str; 3] = ["rust", "go", "zig"];

fn author(i: usize) -> String {
    format!("a{i:02}")
}

/// 20 authors with 0 to 16 posts each (a00 has none). Times collide across authors (ties for
/// the sorted merge); scores are unique.
fn posts() -> Vec<Post> {
    let mut v = Vec::new();
    for i in 0..20usize {
        let count = (i * 7) % 17;
        for j in 0..count {
            v.push(Post {
                author: author(i),
                at: (j * 5 + i % 4) as u32,
                topic: TOPICS[(i + j) % 3].into(),
                score: (i * 100 + j) as u32,
                likes: ((i * 31 + j * 17) % 10) as u32,
                body: format!("post {j} of {}", author(i)),
            });
        }
    }
    v
}

async fn feed() -> (Client, Vec<Post>) {
    let db = setup::<Post>().await;
    let data = posts();
    batch_put(&db, &data).await;
    (db, data)
}

/// The authors in a listed order that is not sorted, with a duplicate.
fn listed() -> Vec<String> {
    let mut v: Vec<String> = (0..20)
        .rev()
        .step_by(2)
        .chain((0..20).step_by(2))
        .map(author)
        .collect();
    v.push(author(5));
    v
}

fn ids(posts: &[Post]) -> Vec<(String, u32)> {
    posts.iter().map(|p| (p.author.clone(), p.at)).collect()
}

/// The expected result in partition order: each listed author once, their posts by time.
fn in_partition_order(
    data: &[Post],
    authors: &[String],
    keep: impl Fn(&Post) -> bool,
) -> Vec<(String, u32)> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for a in authors {
        if seen.contains(a) {
            continue;
        }
        seen.push(a.clone());
        let mut mine: Vec<&Post> = data.iter().filter(|p| &p.author == a && keep(p)).collect();
        mine.sort_by_key(|p| p.at);
        out.extend(mine.into_iter().map(|p| (p.author.clone(), p.at)));
    }
    out
}

/// The expected result merged by time (ties in the listed order of their authors).
fn by_time(data: &[Post], authors: &[String], descending: bool) -> Vec<(String, u32)> {
    let rank = |a: &str| authors.iter().position(|x| x == a).unwrap();
    let mut v: Vec<&Post> = data
        .iter()
        .filter(|p| authors.contains(&p.author))
        .collect();
    v.sort_by(|x, y| {
        let time = if descending {
            y.at.cmp(&x.at)
        } else {
            x.at.cmp(&y.at)
        };
        time.then(rank(&x.author).cmp(&rank(&y.author)))
    });
    v.into_iter().map(|p| (p.author.clone(), p.at)).collect()
}

fn queries(db: &Client) -> u64 {
    db.stats()
        .get(Operation::Query, &db.table_name("feed"))
        .map_or(0, |s| s.requests)
}

#[tokio::test]
async fn a_list_of_partition_keys_reads_each_partition_once_in_the_listed_order() {
    let (db, data) = feed().await;
    let authors = listed();
    let find = || Post::find(&db).filter(Post::AUTHOR.is_in(authors.clone()));
    let plan = find().explain().unwrap();
    assert_eq!(plan.operation, Operation::Query);
    assert_eq!(plan.index, None);
    let fan_out = plan.fan_out.clone().expect("a fan-out");
    assert_eq!(fan_out.partitions, 20, "the duplicate is read once");
    assert_eq!(fan_out.attribute, "author");
    assert_eq!(fan_out.concurrency, 8, "the documented default");
    assert_eq!(fan_out.order, MergeOrder::Partitions);
    let shown = plan.to_string();
    assert!(
        shown.contains(
            "fan-out [20 Queries, one per `author` value, 8 at a time, in partition order]"
        ),
        "{shown}"
    );

    let before = queries(&db);
    let got = find().all().await.unwrap();
    assert_eq!(ids(&got), in_partition_order(&data, &authors, |_| true));
    assert_eq!(queries(&db) - before, 20, "one Query per partition");

    // The same through an OR of equalities, a stream, and a smaller concurrency.
    let either = Post::AUTHOR.eq(author(3)).or(Post::AUTHOR.eq(author(1)));
    let got = Post::find(&db).filter(either).all().await.unwrap();
    assert_eq!(
        ids(&got),
        in_partition_order(&data, &[author(3), author(1)], |_| true)
    );
    let streamed: Vec<Post> = find().concurrency(2).stream().try_collect().await.unwrap();
    assert_eq!(
        ids(&streamed),
        in_partition_order(&data, &authors, |_| true)
    );
}

#[tokio::test]
async fn sorted_merges_partitions_by_sort_key_both_ways() {
    let (db, data) = feed().await;
    let authors: Vec<String> = (0..20).map(author).rev().collect();
    let find = || {
        Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .sorted()
    };
    assert_eq!(
        find().explain().unwrap().fan_out.unwrap().order,
        MergeOrder::SortKeyAscending
    );
    assert_eq!(
        ids(&find().all().await.unwrap()),
        by_time(&data, &authors, false)
    );
    let down = find().descending().all().await.unwrap();
    assert_eq!(ids(&down), by_time(&data, &authors, true));

    // A small page size: each partition is read over several DynamoDB pages.
    let paged = find().page_size(2).concurrency(3).all().await.unwrap();
    assert_eq!(ids(&paged), by_time(&data, &authors, false));
}

#[tokio::test]
async fn a_limit_is_exact_across_partitions_and_reads_no_further_than_needed() {
    let (db, data) = feed().await;
    let authors = listed();
    let all = in_partition_order(&data, &authors, |_| true);
    for n in [1, 3, 7, 16, 40, all.len(), all.len() + 5] {
        let got = Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .limit(n)
            .all()
            .await
            .unwrap();
        assert_eq!(ids(&got), all[..n.min(all.len())], "limit {n}");
    }
    // In partition order, a limit the first partition covers reads only that partition.
    let first = &authors[0];
    let in_first = data.iter().filter(|p| &p.author == first).count();
    assert!(in_first >= 3, "{first} has {in_first} posts");
    let before = queries(&db);
    let got = Post::find(&db)
        .filter(Post::AUTHOR.is_in(authors.clone()))
        .limit(3)
        .all()
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        queries(&db) - before,
        1,
        "one Query: the first partition held the 3 items"
    );
    let stats = db.stats();
    let read = stats.get(Operation::Query, &db.table_name("feed")).unwrap();
    assert!(read.items_read >= 3, "{read:?}");

    // Merged by time: the limit holds too.
    let sorted = Post::find(&db)
        .filter(Post::AUTHOR.is_in(authors.clone()))
        .sorted()
        .limit(10)
        .all()
        .await
        .unwrap();
    let mut distinct = authors.clone();
    distinct.pop();
    assert_eq!(ids(&sorted), by_time(&data, &distinct, false)[..10]);
}

#[tokio::test]
async fn one_cursor_resumes_every_partition_exactly_from_every_page() {
    let (db, data) = feed().await;
    let authors = listed();
    let mut distinct = authors.clone();
    distinct.pop();
    for (sorted, expected) in [
        (false, in_partition_order(&data, &authors, |_| true)),
        (true, by_time(&data, &distinct, false)),
    ] {
        let find = || {
            let f = Post::find(&db).filter(Post::AUTHOR.is_in(authors.clone()));
            if sorted {
                f.sorted()
            } else {
                f
            }
        };
        for k in [3, 10] {
            let got = page_loop(k, find).await;
            assert_eq!(ids(&got), expected, "pages of {k}, sorted: {sorted}");
        }
        // Resume from every cursor of a paging, each on its own.
        let mut cursor: Option<Cursor> = None;
        let mut offset = 0;
        loop {
            let page = find().limit(13).page(cursor.clone()).await.unwrap();
            offset += page.items.len();
            let Some(next) = page.next else { break };
            let rest = find().after(next.clone()).all().await.unwrap();
            assert_eq!(
                ids(&rest),
                expected[offset..],
                "after {offset} items, sorted: {sorted}"
            );
            cursor = Some(next);
        }
        assert_eq!(offset, expected.len());
        // pages() follows the same cursors.
        let pages: Vec<Page<Post>> = find().limit(6).pages().try_collect().await.unwrap();
        let flat: Vec<Post> = pages.into_iter().flat_map(|p| p.items).collect();
        assert_eq!(ids(&flat), expected);
    }

    // A cursor binds the whole fan-out: another list of partitions or order refuses it.
    let page = Post::find(&db)
        .filter(Post::AUTHOR.is_in(authors.clone()))
        .limit(5)
        .page(None)
        .await
        .unwrap();
    let cursor = page.next.expect("more");
    for other in [
        Post::find(&db).filter(Post::AUTHOR.is_in(authors[..5].to_vec())),
        Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .sorted(),
        Post::find(&db).filter(Post::AUTHOR.eq(authors[0].clone())),
    ] {
        let err = other.page(cursor.clone()).await.unwrap_err();
        assert!(matches!(err, Error::InvalidCursor { .. }), "{err}");
    }
}

#[tokio::test]
async fn filters_and_sort_conditions_apply_to_every_partition() {
    let (db, data) = feed().await;
    let authors = listed();
    let keep = |p: &Post| p.at >= 10 && p.likes >= 4;
    let find = || {
        Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .filter(Post::AT.ge(10))
            .filter(Post::LIKES.ge(4))
    };
    let plan = find().explain().unwrap();
    assert!(
        plan.key_condition.as_deref().unwrap().contains("at >= 10"),
        "{plan}"
    );
    assert_eq!(plan.filter.as_deref(), Some("likes >= 4"));
    let expected = in_partition_order(&data, &authors, keep);
    assert_eq!(ids(&find().all().await.unwrap()), expected);
    assert_eq!(ids(&find().page_size(3).all().await.unwrap()), expected);
    assert_eq!(ids(&page_loop(4, || find().page_size(2)).await), expected);
    assert_eq!(find().count().await.unwrap(), expected.len());
    assert_eq!(
        find().limit(5).count().await.unwrap(),
        5.min(expected.len())
    );
    let total = data.iter().filter(|p| authors.contains(&p.author)).count();
    assert_eq!(
        Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .count()
            .await
            .unwrap(),
        total
    );
}

#[tokio::test]
async fn an_index_partition_key_list_fans_out_on_that_index() {
    let (db, data) = feed().await;
    let topics = vec!["zig".to_owned(), "rust".to_owned()];
    let find = || {
        Post::find(&db)
            .filter(Post::TOPIC.is_in(topics.clone()))
            .filter(Post::SCORE.lt(1500))
            .sorted()
            .descending()
    };
    let plan = find().explain().unwrap();
    assert_eq!(plan.index, Some("ByTopic"));
    assert!(
        plan.fetches_base_items,
        "keys-only index: full items from the table"
    );
    assert_eq!(plan.fan_out.as_ref().map(|f| f.partitions), Some(2));
    let mut expected: Vec<&Post> = data
        .iter()
        .filter(|p| topics.contains(&p.topic) && p.score < 1500)
        .collect();
    expected.sort_by_key(|p| std::cmp::Reverse(p.score));
    let expected: Vec<Post> = expected.into_iter().cloned().collect();
    assert_eq!(
        find().all().await.unwrap(),
        expected,
        "whole items, by score, highest first"
    );
    let paged = page_loop(7, find).await;
    assert_eq!(paged, expected);

    // A selection the index lacks: full items read with the index's keys, cursors still exact.
    #[derive(Deserialize, Debug, PartialEq)]
    struct Likes {
        author: String,
        at: u32,
        likes: u32,
    }
    let select = || find().select([Post::LIKES]).project::<Likes>();
    let got = page_loop(5, select).await;
    let want: Vec<(String, u32, u32)> = expected
        .iter()
        .map(|p| (p.author.clone(), p.at, p.likes))
        .collect();
    let got: Vec<(String, u32, u32)> = got.into_iter().map(|l| (l.author, l.at, l.likes)).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_fan_out_wider_than_its_bound_is_refused_before_any_request() {
    let db = support::unreachable_client().await;
    let many: Vec<String> = (0..101).map(|i| format!("a{i}")).collect();
    let err = Post::find(&db)
        .filter(Post::AUTHOR.is_in(many.clone()))
        .all()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidQuery { reason, .. } if reason.contains("101 values") && reason.contains("max_fan_out")),
        "{err}"
    );
    let err = Post::find(&db)
        .filter(Post::AUTHOR.is_in(many))
        .allow_scan()
        .max_fan_out(50)
        .count()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidQuery { .. }),
        "never a silent scan: {err}"
    );
    let err = Post::find(&db)
        .filter(Post::AUTHOR.is_in(Vec::<String>::new()))
        .all()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lists no values"), "{err}");
    let one = Post::find(&db)
        .filter(Post::AUTHOR.eq("a01"))
        .sorted()
        .explain()
        .unwrap();
    assert_eq!(
        (one.operation, one.fan_out),
        (Operation::Query, None),
        "sorted() on one partition is its Query's own order"
    );
}

#[tokio::test]
async fn the_query_cache_holds_each_partition_apart() {
    let (base, data) = feed().await;
    let db =
        crate::support::cache::with_cache(&base, MokaLayer::new(1 << 24), CacheConfig::default());
    let authors: Vec<String> = (1..6).map(author).collect();
    let find = || {
        Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .cached()
    };
    let first = find().all().await.unwrap();
    assert_eq!(ids(&first), in_partition_order(&data, &authors, |_| true));
    let before = queries(&db);
    assert_eq!(find().all().await.unwrap(), first);
    assert_eq!(
        queries(&db),
        before,
        "every partition served from the cache"
    );

    // A write to one partition: only that partition is read again, and it is fresh.
    let mut changed = first
        .iter()
        .find(|p| p.author == author(2))
        .unwrap()
        .clone();
    changed.body = "edited".into();
    changed.put(&db).await.unwrap();
    let again = find().all().await.unwrap();
    assert_eq!(
        queries(&db) - before,
        1,
        "only a02's partition is read again"
    );
    assert!(again.contains(&changed));
    assert_eq!(again.len(), first.len());
}

#[tokio::test]
async fn several_finds_run_together_and_answer_in_order() {
    let (db, data) = feed().await;
    let finds: Vec<_> = (0..12)
        .map(|i| {
            Post::find(&db)
                .filter(Post::AUTHOR.eq(author(19 - i)))
                .limit(3)
        })
        .collect();
    let results = Find::all_of(finds, 4).await.unwrap();
    assert_eq!(results.len(), 12);
    for (i, got) in results.iter().enumerate() {
        let a = [author(19 - i)];
        let want = in_partition_order(&data, &a, |_| true);
        assert_eq!(ids(got), want[..want.len().min(3)], "find {i}");
    }
    let failing = vec![
        Post::find(&db).filter(Post::AUTHOR.eq(author(1))),
        Post::find(&db).filter(Post::BODY.eq("x")),
    ];
    let err = Find::all_of(failing, 2).await.unwrap_err();
    assert!(matches!(err, Error::ScanRequired { .. }), "{err}");
}

/// Throttled, failed and lost answers on a third of the Queries: a fan-out retries each
/// partition's read on its own (reads are safe to repeat) and returns exactly what a clean run
/// returns, pages and cursors included.
#[cfg(feature = "testing")]
#[tokio::test]
async fn faults_on_some_queries_change_nothing_in_the_result() {
    use dynamite::testing::{Fault, FaultProxy, Match};
    let (direct, data) = feed().await;
    let proxy = FaultProxy::start(&support::endpoint()).await;
    let policy = RetryPolicy::standard()
        .max_attempts(12)
        .base_delay(std::time::Duration::from_millis(1))
        .max_delay(std::time::Duration::from_millis(5));
    let db = Client::builder(support::sdk_at(&proxy.endpoint()).await)
        .table_prefix(direct.table_prefix())
        .retry_policy(policy)
        .retry_budget(dynamite::RetryBudget::unlimited())
        .build();
    let query = Match::Operation(Operation::Query);
    proxy.script_rate(query.clone(), Fault::ProvisionedThroughputExceeded, 0.15);
    proxy.script_rate(query.clone(), Fault::InternalServerError, 0.1);
    proxy.script_rate(query, Fault::DropAfterApplied, 0.1);
    let authors = listed();
    let mut distinct = authors.clone();
    distinct.pop();
    let find = || {
        Post::find(&db)
            .filter(Post::AUTHOR.is_in(authors.clone()))
            .page_size(4)
    };
    assert_eq!(
        ids(&find().all().await.unwrap()),
        in_partition_order(&data, &authors, |_| true)
    );
    assert_eq!(
        ids(&find().sorted().all().await.unwrap()),
        by_time(&data, &distinct, false)
    );
    assert_eq!(
        ids(&page_loop(11, || find().sorted()).await),
        by_time(&data, &distinct, false)
    );
    assert_eq!(
        find().count().await.unwrap(),
        data.iter().filter(|p| authors.contains(&p.author)).count()
    );
    let faults = proxy
        .requests()
        .iter()
        .filter(|seen| seen.fault.is_some())
        .count();
    assert!(faults > 10, "faults were injected: {faults}");
}
