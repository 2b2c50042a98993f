//! Attribute names: reserved words; '.', '#', ':' and unicode.

use super::*;

// ---------------------------------------------------------------------------------------------
// Attribute names: reserved words; '.', '#', ':' and unicode
// ---------------------------------------------------------------------------------------------

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "reserved")]
#[dynamite(global_index(name = "status-date", projection = include(size, count)))]
struct Reserved {
    #[dynamite(partition_key)]
    name: String,
    #[dynamite(sort_key)]
    timestamp: u64,
    #[dynamite(index_key(index = "status-date", partition))]
    status: String,
    #[dynamite(index_key(index = "status-date", sort))]
    date: String,
    size: u32,
    count: i64,
    comment: Option<String>,
    #[serde(rename = "select")]
    select_: String,
    data: Vec<String>,
    #[serde(rename = "TABLE")]
    table: bool,
}

fn reserved_rows() -> Vec<Reserved> {
    (0..20u64)
        .map(|i| Reserved {
            name: if i < 15 { "alpha" } else { "beta" }.into(),
            timestamp: 100 + i,
            status: if i % 2 == 0 { "on" } else { "off" }.into(),
            date: format!("2024-0{}-{:02}", 1 + i % 3, 10 + i),
            size: (i * 3 % 10) as u32,
            count: i as i64 - 5,
            comment: (i % 3 == 0).then(|| format!("c{i}")),
            select_: format!("sel{}", i % 4),
            data: vec![format!("x{}", i % 5)],
            table: i % 5 == 0,
        })
        .collect()
}

#[derive(Deserialize, Debug, PartialEq)]
struct SizeCount {
    name: String,
    timestamp: u64,
    status: String,
    date: String,
    size: u32,
    count: i64,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Picked {
    name: String,
    timestamp: u64,
    size: u32,
    #[serde(rename = "select")]
    select_: String,
    #[serde(default)]
    comment: Option<String>,
}

#[tokio::test]
async fn reserved_words_as_keys_filters_and_projections() {
    let db = setup::<Reserved>().await;
    let data = reserved_rows();
    put_all(&db, &data).await;
    let ts = |v: &[Reserved]| v.iter().map(|r| r.timestamp).collect::<Vec<_>>();

    // GetItem on name/timestamp.
    let q = Reserved::find(&db)
        .filter(Reserved::NAME.eq("alpha"))
        .filter(Reserved::TIMESTAMP.eq(103));
    assert_eq!(q.explain().unwrap().operation, Operation::GetItem);
    assert_eq!(q.all().await.unwrap(), vec![data[3].clone()]);

    // Query with a sort-key condition and filters on reserved words.
    let q = || {
        Reserved::find(&db)
            .filter(Reserved::NAME.eq("alpha"))
            .filter(Reserved::TIMESTAMP.between(101, 113))
            .filter(Reserved::SIZE.ge(3))
            .filter(Reserved::COUNT.lt(7))
            .filter(Reserved::COMMENT.exists().or(Reserved::SELECT_.eq("sel2")))
            .filter(Reserved::DATA.contains("x1").not())
            .filter(Reserved::TABLE.eq(false))
    };
    let plan = q().explain().unwrap();
    assert_eq!(
        plan.key_condition.as_deref(),
        Some("name = \"alpha\" AND timestamp BETWEEN 101 AND 113")
    );
    let want: Vec<u64> = data
        .iter()
        .filter(|r| {
            r.name == "alpha"
                && (101..=113).contains(&r.timestamp)
                && r.size >= 3
                && r.count < 7
                && (r.comment.is_some() || r.select_ == "sel2")
                && !r.data.contains(&"x1".to_string())
                && !r.table
        })
        .map(|r| r.timestamp)
        .collect();
    assert!(want.len() >= 2, "{want:?}");
    assert_eq!(ts(&q().all().await.unwrap()), want);
    assert_eq!(ts(&page_loop(1, q).await), want);
    assert_eq!(q().count().await.unwrap(), want.len());

    // The GSI keyed by `status` and `date`, include-projecting `size` and `count`.
    let g = || {
        Reserved::find(&db)
            .filter(Reserved::STATUS.eq("on"))
            .filter(Reserved::DATE.begins_with("2024-02"))
    };
    let plan = g().explain().unwrap();
    assert_eq!(plan.index, Some("status-date"));
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"status = "on" AND begins_with(date, "2024-02")"#)
    );
    assert!(plan.fetches_base_items);
    let mut want: Vec<&Reserved> = data
        .iter()
        .filter(|r| r.status == "on" && r.date.starts_with("2024-02"))
        .collect();
    want.sort_by(|a, b| a.date.cmp(&b.date));
    let want: Vec<Reserved> = want.into_iter().cloned().collect();
    assert!(want.len() >= 2);
    assert_eq!(g().all().await.unwrap(), want);
    assert_eq!(page_loop(1, g).await, want);
    // The projected attributes, without the base table, and a filter on them.
    let g2 = || {
        g().filter(Reserved::SIZE.gt(0).and(Reserved::COUNT.ne(-100)))
            .project::<SizeCount>()
    };
    let plan = g2().explain().unwrap();
    assert!(!plan.fetches_base_items);
    // One filter() of an AND is two conditions.
    assert_eq!(plan.filter.as_deref(), Some("size > 0 AND count <> -100"));
    let got = g2().all().await.unwrap();
    let expected: Vec<SizeCount> = want
        .iter()
        .filter(|r| r.size > 0)
        .map(|r| SizeCount {
            name: r.name.clone(),
            timestamp: r.timestamp,
            status: r.status.clone(),
            date: r.date.clone(),
            size: r.size,
            count: r.count,
        })
        .collect();
    assert_eq!(got, expected);

    // A projection of reserved words from the table.
    let p = Reserved::find(&db)
        .filter(Reserved::NAME.eq("beta"))
        .project::<Picked>()
        .select_attr(Reserved::SIZE)
        .select_attr(Reserved::SELECT_)
        .select_attr(Reserved::COMMENT);
    assert_eq!(
        p.explain().unwrap().projection,
        Some(vec!["size".into(), "select".into(), "comment".into()])
    );
    let got = p.all().await.unwrap();
    let expected: Vec<Picked> = data[15..]
        .iter()
        .map(|r| Picked {
            name: r.name.clone(),
            timestamp: r.timestamp,
            size: r.size,
            select_: r.select_.clone(),
            comment: r.comment.clone(),
        })
        .collect();
    assert_eq!(got, expected);

    // The string-named escape hatch on a reserved word, in a scan.
    let n = Reserved::scan(&db)
        .filter(Attr::<Reserved, i64>::named("count").ge(10))
        .count()
        .await
        .unwrap();
    assert_eq!(n, data.iter().filter(|r| r.count >= 10).count());
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "weird")]
#[dynamite(global_index(name = "by.k-v", projection = keys_only))]
#[dynamite(local_index(name = "by_uni", projection = all))]
struct Weird {
    #[dynamite(partition_key)]
    #[serde(rename = "a.b")]
    ab: String,
    #[dynamite(sort_key)]
    #[serde(rename = "x#y")]
    xy: u32,
    #[dynamite(index_key(index = "by.k-v", partition))]
    #[serde(rename = "k:v")]
    kv: String,
    #[dynamite(index_key(index = "by_uni", sort))]
    #[serde(rename = "ünï cødé")]
    uni: String,
    #[serde(rename = "#hash")]
    hash: i64,
    #[serde(rename = ":colon")]
    colon: String,
    #[serde(rename = "m.a.p")]
    map: BTreeMap<String, String>,
    #[serde(rename = "🦀")]
    crab: Vec<String>,
}

fn weird_rows() -> Vec<Weird> {
    (0..16u32)
        .map(|i| Weird {
            ab: if i < 12 { "p.1#:" } else { "p.2" }.into(),
            xy: i,
            kv: format!("k:{}", i % 3),
            uni: format!("{}-{:02}", if i % 2 == 0 { "é" } else { "ü" }, 20 - i),
            hash: (i as i64 * 5) % 7,
            colon: format!(":{}", i % 4),
            map: [
                ("k.1".to_string(), format!("v{}", i % 2)),
                ("#k".to_string(), format!("w{i}")),
            ]
            .into(),
            crab: vec![format!("🦀{}", i % 3)],
        })
        .collect()
}

#[derive(Deserialize, Debug, PartialEq)]
struct WeirdBits {
    #[serde(rename = "a.b")]
    ab: String,
    #[serde(rename = "x#y")]
    xy: u32,
    #[serde(rename = "#hash")]
    hash: i64,
    #[serde(rename = "m.a.p")]
    map: BTreeMap<String, String>,
}

#[tokio::test]
async fn special_characters_in_keys_filters_and_projections() {
    let db = setup::<Weird>().await;
    let data = weird_rows();
    put_all(&db, &data).await;
    let xs = |v: &[Weird]| v.iter().map(|w| w.xy).collect::<Vec<_>>();
    let p1 = || Weird::find(&db).filter(Weird::AB.eq("p.1#:"));

    // GetItem on "a.b" / "x#y".
    let q = p1().filter(Weird::XY.eq(4));
    let plan = q.explain().unwrap();
    assert_eq!(plan.operation, Operation::GetItem);
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"a.b = "p.1#:" AND x#y = 4"#)
    );
    assert_eq!(q.all().await.unwrap(), vec![data[4].clone()]);

    // Query with a sort-key condition and filters on each odd name, nested map keys with
    // '.' and '#', and unicode.
    let map_k1 = || Weird::MAP.at::<String>("k.1");
    let q = || {
        p1().filter(Weird::XY.ge(2))
            .filter(Weird::HASH.ne(3))
            .filter(Weird::COLON.is_in([":1", ":2", ":3"]))
            .filter(map_k1().eq("v0").or(Weird::MAP.at::<String>("#k").eq("w5")))
            .filter(Weird::CRAB.contains("🦀2").not())
            .filter(Weird::UNI.begins_with("é").or(Weird::KV.eq("k:1")))
    };
    let plan = q().explain().unwrap();
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"a.b = "p.1#:" AND x#y >= 2"#)
    );
    let want: Vec<u32> = data
        .iter()
        .filter(|w| {
            w.ab == "p.1#:"
                && w.xy >= 2
                && w.hash != 3
                && w.colon != ":0"
                && (w.map["k.1"] == "v0" || w.map["#k"] == "w5")
                && w.crab[0] != "🦀2"
                && (w.uni.starts_with('é') || w.kv == "k:1")
        })
        .map(|w| w.xy)
        .collect();
    assert!(want.len() >= 2, "{want:?}");
    assert_eq!(xs(&q().all().await.unwrap()), want);
    assert_eq!(xs(&page_loop(1, q).await), want);
    assert_eq!(q().count().await.unwrap(), want.len());

    // The keys-only GSI on "k:v": whole items through the base table, paged.
    let g = || Weird::find(&db).filter(Weird::KV.eq("k:2"));
    let plan = g().explain().unwrap();
    assert_eq!(plan.index, Some("by.k-v"));
    assert!(plan.fetches_base_items);
    let mut got = g().all().await.unwrap();
    got.sort_by_key(|w| (w.ab.clone(), w.xy));
    let want: Vec<Weird> = data.iter().filter(|w| w.kv == "k:2").cloned().collect();
    assert_eq!(got, want);
    let mut paged = page_loop(2, g).await;
    paged.sort_by_key(|w| (w.ab.clone(), w.xy));
    assert_eq!(paged, want);

    // The local index on the unicode name, forced, with begins_with and descending.
    let l = || {
        p1().index(Weird::BY_UNI)
            .filter(Weird::UNI.begins_with("ü"))
            .descending()
    };
    let plan = l().explain().unwrap();
    assert_eq!(plan.index, Some("by_uni"));
    assert_eq!(
        plan.key_condition.as_deref(),
        Some(r#"a.b = "p.1#:" AND begins_with(ünï cødé, "ü")"#)
    );
    let mut want: Vec<&Weird> = data
        .iter()
        .filter(|w| w.ab == "p.1#:" && w.uni.starts_with('ü'))
        .collect();
    want.sort_by(|a, b| b.uni.cmp(&a.uni));
    let want: Vec<u32> = want.iter().map(|w| w.xy).collect();
    assert_eq!(xs(&l().all().await.unwrap()), want);
    assert_eq!(xs(&page_loop(2, l).await), want);

    // Projections of the odd names, a nested key with '.', paged.
    let p = || {
        p1().project::<WeirdBits>()
            .select_attr(Weird::HASH)
            .select_attr(map_k1())
    };
    assert_eq!(
        p().explain().unwrap().projection,
        Some(vec!["#hash".into(), "m.a.p.k.1".into()])
    );
    let want: Vec<WeirdBits> = data[..12]
        .iter()
        .map(|w| WeirdBits {
            ab: w.ab.clone(),
            xy: w.xy,
            hash: w.hash,
            map: [("k.1".to_string(), w.map["k.1"].clone())].into(),
        })
        .collect();
    assert_eq!(p().all().await.unwrap(), want);
    assert_eq!(page_loop(5, p).await, want);
}
