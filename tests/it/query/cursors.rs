//! Cursors: tampered, forged, foreign or misplaced cursors fail before any request;
//! encrypted cursors hide key values and page through everything.

use super::*;

const CURSOR_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

/// Cursors are URL-safe base64 without padding.
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The bytes of a cursor.
fn cursor_bytes(cursor: &Cursor) -> Vec<u8> {
    B64.decode(cursor.as_str())
        .expect("a cursor is URL-safe base64")
}

/// `true` when `needle` occurs in `haystack`.
fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Flips one bit in the middle of a cursor's bytes.
fn tamper(cursor: &Cursor) -> Cursor {
    let mut bytes = cursor_bytes(cursor);
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    Cursor::parse(B64.encode(bytes))
}

/// A plain cursor forged by hand, in the documented format (see `dynamite::page`): format byte
/// 1, the query fingerprint `fp`, then each attribute as `a<len>:<name>` followed by its value
/// as `<tag><len>:<text>` (`s` string, `n` canonical number, `x` other number text, `b` hex),
/// in the order given.
fn forge(fp: &[u8], attrs: &[(&str, char, &str)]) -> Cursor {
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(fp);
    for (name, tag, text) in attrs {
        bytes.extend_from_slice(
            format!("a{}:{name}{tag}{}:{text}", name.len(), text.len()).as_bytes(),
        );
    }
    Cursor::parse(B64.encode(bytes))
}

/// The query fingerprint inside a plain cursor.
fn fingerprint_of(plain: &Cursor) -> Vec<u8> {
    cursor_bytes(plain)[1..13].to_vec()
}

#[tokio::test]
async fn bad_cursors_fail_before_any_request() {
    let (db, _) = order_db().await;
    let keyed = Client::builder(db.sdk().clone())
        .table_prefix(db.table_prefix().to_owned())
        .cursor_key(CURSOR_KEY.to_vec())
        .build();
    /// The query on the table (keys `customer`, `day`) and on the local index (plus `total`).
    #[derive(Clone, Copy, Debug)]
    enum On {
        Table,
        Local,
    }
    fn q(db: &Client, on: On) -> Find<'_, Order> {
        let find = Order::find(db).filter(Order::CUSTOMER.eq("c1"));
        match on {
            On::Table => find,
            On::Local => find.index(Order::BY_TOTAL_LOCAL),
        }
    }
    // Real cursors, from the real server.
    let plain = q(&db, On::Table)
        .limit(5)
        .page(None)
        .await
        .unwrap()
        .next
        .unwrap();
    let sealed = q(&keyed, On::Table)
        .limit(5)
        .page(None)
        .await
        .unwrap()
        .next
        .unwrap();
    let plain_local = q(&db, On::Local)
        .limit(5)
        .page(None)
        .await
        .unwrap()
        .next
        .unwrap();
    assert_ne!(plain, sealed);
    // The plain cursor shows its key; the encrypted one does not.
    assert!(holds(&cursor_bytes(&plain), b"d004"));
    assert!(!holds(&cursor_bytes(&sealed), b"d004"));
    // ... and both resume where they should on the real server.
    let p2 = q(&db, On::Table)
        .limit(5)
        .page(plain.clone())
        .await
        .unwrap();
    assert_eq!(p2.items[0].day, "d005");
    let p2 = q(&keyed, On::Table)
        .limit(5)
        .page(sealed.clone())
        .await
        .unwrap();
    assert_eq!(p2.items[0].day, "d005");

    let trap = Trap::new().await;
    let off = trap.client(db.table_prefix(), None).await;
    let off_keyed = trap.client(db.table_prefix(), Some(CURSOR_KEY)).await;
    let off_other_key = trap.client(db.table_prefix(), Some(b"another key")).await;

    let random_bytes: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(97) ^ 0x5a).collect();
    let fp = fingerprint_of(&plain);
    let fp_local = fingerprint_of(&plain_local);
    // A well-formed forgery passes every check (below, it is sent): the cases differ from it
    // in one way each.
    let good = forge(&fp, &[("customer", 's', "c1"), ("day", 's', "d004")]);
    assert_eq!(good, plain, "the forged cursor is the real one");
    let long = "x".repeat(2049);
    let long_day = "d".repeat(1025);

    use On::{Local, Table};
    let cases: Vec<(&str, &Client, On, Cursor, &str)> = vec![
        (
            "percent signs",
            &off,
            Table,
            Cursor::parse("%%%"),
            "bad encoding",
        ),
        (
            "empty",
            &off,
            Table,
            Cursor::parse(""),
            "empty cursor: pass None",
        ),
        (
            "empty, keyed",
            &off_keyed,
            Table,
            Cursor::parse(""),
            "empty cursor",
        ),
        (
            "random base64",
            &off,
            Table,
            Cursor::parse(B64.encode(&random_bytes)),
            "version",
        ),
        (
            "base64 text",
            &off,
            Table,
            Cursor::parse(B64.encode("hello, world")),
            "version",
        ),
        (
            "an old JSON cursor",
            &off,
            Table,
            Cursor::parse(B64.encode(r#"{"v":1,"q":"x","k":{}}"#)),
            "version",
        ),
        (
            "an old signed cursor",
            &off,
            Table,
            Cursor::parse("eyJ2IjoxfQ.c2ln"),
            "encoding",
        ),
        (
            "no fingerprint",
            &off,
            Table,
            Cursor::parse(B64.encode([1u8, 7])),
            "too short",
        ),
        (
            "another fingerprint",
            &off,
            Table,
            forge(&[0; 12], &[("customer", 's', "c1"), ("day", 's', "d004")]),
            "another query",
        ),
        (
            "a wrong attribute name",
            &off,
            Table,
            forge(&fp, &[("customr", 's', "c1"), ("day", 's', "d004")]),
            "attribute `customr`, which is not a key attribute",
        ),
        (
            "an extra attribute",
            &off,
            Table,
            forge(
                &fp,
                &[
                    ("customer", 's', "c1"),
                    ("day", 's', "d004"),
                    ("note", 's', "x"),
                ],
            ),
            "attribute `note`, which is not a key attribute",
        ),
        (
            "a wrong type",
            &off,
            Table,
            forge(&fp, &[("customer", 's', "c1"), ("day", 'n', "4e0")]),
            "sort key `day` must be of type S, found N",
        ),
        (
            "a binary partition key",
            &off,
            Table,
            forge(&fp, &[("customer", 'b', "c1"), ("day", 's', "d004")]),
            "`customer` must be of type S, found B",
        ),
        (
            "a missing sort key",
            &off,
            Table,
            forge(&fp, &[("customer", 's', "c1")]),
            "lacks the sort key `day`",
        ),
        (
            "no key",
            &off,
            Table,
            forge(&fp, &[]),
            "lacks the partition key `customer`",
        ),
        (
            "an oversized partition key",
            &off,
            Table,
            forge(&fp, &[("customer", 's', &long), ("day", 's', "d004")]),
            "2049 bytes, over DynamoDB's limit of 2048",
        ),
        (
            "an oversized sort key",
            &off,
            Table,
            forge(&fp, &[("customer", 's', "c1"), ("day", 's', &long_day)]),
            "1025 bytes, over DynamoDB's limit of 1024",
        ),
        (
            "an empty sort key",
            &off,
            Table,
            forge(&fp, &[("customer", 's', "c1"), ("day", 's', "")]),
            "`day` is empty",
        ),
        (
            "another partition than the query's",
            &off,
            Table,
            forge(&fp, &[("customer", 's', "c2"), ("day", 's', "d004")]),
            "starts outside this query",
        ),
        (
            "attributes out of order",
            &off,
            Table,
            forge(&fp, &[("day", 's', "d004"), ("customer", 's', "c1")]),
            "non-canonical",
        ),
        (
            "a bad structure",
            &off,
            Table,
            forge(
                &fp,
                &[
                    ("customer", 's', "c1"),
                    ("day", 's', "d004"),
                    ("x", 'q', ""),
                ],
            ),
            "bad key",
        ),
        (
            "a missing index key",
            &off,
            Local,
            forge(&fp_local, &[("customer", 's', "c1"), ("day", 's', "d004")]),
            "lacks the sort key `total`",
        ),
        (
            "a number that is not one",
            &off,
            Local,
            forge(
                &fp_local,
                &[
                    ("customer", 's', "c1"),
                    ("day", 's', "d004"),
                    ("total", 'x', "12abc"),
                ],
            ),
            "`total` is not a valid DynamoDB number",
        ),
        (
            "a number out of range",
            &off,
            Local,
            forge(
                &fp_local,
                &[
                    ("customer", 's', "c1"),
                    ("day", 's', "d004"),
                    ("total", 'n', "1e999"),
                ],
            ),
            "out of DynamoDB's number range",
        ),
        (
            "a number not in canonical form",
            &off,
            Local,
            forge(
                &fp_local,
                &[
                    ("customer", 's', "c1"),
                    ("day", 's', "d004"),
                    ("total", 'n', "12.0"),
                ],
            ),
            "non-canonical",
        ),
        ("tampered", &off_keyed, Table, tamper(&sealed), "altered"),
        (
            "plain to a client with a cursor key",
            &off_keyed,
            Table,
            plain.clone(),
            "not encrypted",
        ),
        (
            "a forgery to a client with a cursor key",
            &off_keyed,
            Table,
            good.clone(),
            "not encrypted",
        ),
        (
            "encrypted to a client without a key",
            &off,
            Table,
            sealed.clone(),
            "no cursor key",
        ),
        (
            "another key",
            &off_other_key,
            Table,
            sealed.clone(),
            "another cursor key",
        ),
    ];
    for (what, client, on, cursor, needle) in &cases {
        let is_invalid =
            |e: &Error| matches!(e, Error::InvalidCursor { reason } if reason.contains(needle));
        let e = q(client, *on)
            .limit(5)
            .page(cursor.clone())
            .await
            .unwrap_err();
        assert!(is_invalid(&e), "{what}: page: {e:?}");
        let e = q(client, *on)
            .after(cursor.clone())
            .all()
            .await
            .unwrap_err();
        assert!(is_invalid(&e), "{what}: all: {e:?}");
        let e = q(client, *on)
            .after(cursor.clone())
            .stream()
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert!(is_invalid(&e), "{what}: stream: {e:?}");
        let e = q(client, *on)
            .after(cursor.clone())
            .pages()
            .next()
            .await
            .unwrap()
            .unwrap_err();
        assert!(is_invalid(&e), "{what}: pages: {e:?}");
        let e = q(client, *on)
            .after(cursor.clone())
            .count()
            .await
            .unwrap_err();
        assert!(is_invalid(&e), "{what}: count: {e:?}");
    }
    assert_eq!(trap.connections(), 0, "no request may be sent");
    // A cursor of another query: another filter, order, index, projection, table or entity.
    let other_queries: Vec<(&str, Find<'_, Order>)> = vec![
        ("another filter", q(&off, Table).filter(Order::NOTE.ne("x"))),
        (
            "another sort-key condition",
            q(&off, Table).filter(Order::DAY.gt("d000")),
        ),
        ("descending", q(&off, Table).descending()),
        (
            "forced local index",
            q(&off, Table).index(Order::BY_TOTAL_LOCAL),
        ),
        ("a selection", q(&off, Table).select([Order::NOTE])),
        (
            "another partition",
            Order::find(&off).filter(Order::CUSTOMER.eq("c2")),
        ),
    ];
    for (what, find) in other_queries {
        let e = find.limit(5).page(plain.clone()).await.unwrap_err();
        assert!(
            matches!(&e, Error::InvalidCursor { reason } if reason.contains("another query")),
            "{what}: {e:?}"
        );
    }
    let e = q(&off, Table)
        .project::<OrderTotal>()
        .limit(5)
        .page(plain.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidCursor { .. }), "projected: {e:?}");
    // Same query, same cursor, but another table prefix: another table.
    let elsewhere = trap.client("elsewhere-", None).await;
    let e = q(&elsewhere, Table)
        .limit(5)
        .page(plain.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::InvalidCursor { .. }),
        "other table: {e:?}"
    );

    assert_eq!(trap.connections(), 0, "no request may be sent");

    // The good cursors pass the checks on the same clients: only the request fails.
    trap.sends(q(&off, Table).limit(5).after(plain.clone()))
        .await;
    trap.sends(q(&off, Table).limit(5).after(good)).await;
    trap.sends(q(&off_keyed, Table).limit(5).after(sealed))
        .await;
    trap.sends(
        Order::find(&off)
            .filter(Order::CUSTOMER.eq("c1"))
            .index(Order::BY_TOTAL_LOCAL)
            .limit(5)
            .after(plain_local),
    )
    .await;
    // A different limit or page size does not change the query.
    trap.sends(q(&off, Table).limit(2).page_size(3).after(plain))
        .await;
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "accounts")]
#[dynamite(global_index(name = "ByTeam", projection = keys_only))]
struct Account {
    #[dynamite(partition_key)]
    email: String,
    #[dynamite(index_key(index = "ByTeam", partition))]
    team: String,
    #[dynamite(index_key(index = "ByTeam", sort))]
    joined: i64,
    name: String,
}

/// Every page of `build().limit(k)`, following `next`; the items and every cursor handed out.
async fn pages_and_cursors<'a, E: Entity, O: Send + 'static>(
    k: usize,
    build: impl Fn() -> Find<'a, E, O>,
) -> (Vec<O>, Vec<Cursor>) {
    let (mut items, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor: Option<Cursor> = None;
    for _ in 0..1000 {
        let page = build().limit(k).page(cursor.take()).await.expect("page");
        items.extend(page.items);
        match page.next {
            Some(next) => {
                cursors.push(next.clone());
                cursor = Some(next);
            }
            None => return (items, cursors),
        }
    }
    panic!("paging did not end");
}

#[tokio::test]
async fn encrypted_cursors_hide_key_values_and_page_through_everything() {
    let db = setup::<Account>().await;
    let keyed = Client::builder(db.sdk().clone())
        .table_prefix(db.table_prefix().to_owned())
        .cursor_key(CURSOR_KEY.to_vec())
        .build();
    let accounts: Vec<Account> = (0..23i64)
        .map(|i| Account {
            email: format!("user{i:02}.secret@example.org"),
            team: if i % 3 == 0 { "red-team" } else { "blue-team" }.to_owned(),
            joined: 1_700_000_000 + (i * 7919) % 23,
            name: format!("User {i}"),
        })
        .collect();
    put_all(&db, &accounts).await;
    let texts = |a: &Account| -> Vec<Vec<u8>> {
        vec![
            a.email.as_bytes().to_vec(),
            a.email.split('@').next().unwrap().as_bytes().to_vec(),
            b"example.org".to_vec(),
            a.team.as_bytes().to_vec(),
            a.joined.to_string().into_bytes(),
        ]
    };
    let emails =
        |items: &[Account]| -> Vec<String> { items.iter().map(|a| a.email.clone()).collect() };
    let mut all_emails: Vec<String> = accounts.iter().map(|a| a.email.clone()).collect();
    all_emails.sort();

    // A scan of the table, 4 at a time (cursors hold `email`).
    let scan = || Account::scan(&keyed);
    let (items, cursors) = pages_and_cursors(4, scan).await;
    let mut got = emails(&items);
    got.sort();
    assert_eq!(got, all_emails, "every item exactly once");
    assert_eq!(cursors.len(), 5);
    // A query of the keys-only index, 2 at a time, with base items read back (cursors hold
    // `email`, `team` and `joined`).
    let blue = || Account::find(&keyed).filter(Account::TEAM.eq("blue-team"));
    assert!(blue().explain().unwrap().fetches_base_items);
    let (blue_items, blue_cursors) = pages_and_cursors(2, blue).await;
    let mut want: Vec<&Account> = accounts.iter().filter(|a| a.team == "blue-team").collect();
    want.sort_by_key(|a| (a.joined, a.email.clone()));
    let want: Vec<String> = want.iter().map(|a| a.email.clone()).collect();
    assert_eq!(
        emails(&blue_items),
        want,
        "every item exactly once, in order"
    );
    assert_eq!(blue().all().await.unwrap(), blue_items);

    // No cursor shows a key value: not in its text, not in its decoded bytes.
    for cursor in cursors.iter().chain(&blue_cursors) {
        let bytes = cursor_bytes(cursor);
        for account in &accounts {
            for text in texts(account) {
                assert!(!holds(&bytes, &text), "{cursor:?} holds {text:?}");
                assert!(!holds(cursor.as_str().as_bytes(), &text));
            }
        }
    }
    // All distinct; and a cursor reached by another route is the same string.
    let distinct: HashSet<&Cursor> = blue_cursors.iter().collect();
    assert_eq!(distinct.len(), blue_cursors.len());
    let at_four = blue().limit(4).page(None).await.unwrap().next.unwrap();
    assert_eq!(at_four, blue_cursors[1]);
    // The stream of pages takes an encrypted cursor to resume.
    let rest: Vec<Account> = blue()
        .limit(3)
        .after(blue_cursors[1].clone())
        .pages()
        .map_ok(|page| futures::stream::iter(page.items.into_iter().map(Ok::<_, Error>)))
        .try_flatten()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(emails(&rest), want[4..].to_vec());

    // Without a cursor key, the same cursors do show the keys: what the key hides.
    let plain = Account::find(&db)
        .filter(Account::TEAM.eq("blue-team"))
        .limit(2)
        .page(None)
        .await
        .unwrap()
        .next
        .unwrap();
    let second = blue_items[1].clone();
    assert!(holds(&cursor_bytes(&plain), second.email.as_bytes()));
    assert!(holds(&cursor_bytes(&plain), b"blue-team"));
}
