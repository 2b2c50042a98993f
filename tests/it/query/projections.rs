//! Index projections (keys-only and include) and selections through the base table.

use super::*;

// ---------------------------------------------------------------------------------------------
// Index projections: keys-only and include
// ---------------------------------------------------------------------------------------------

fn products() -> Vec<Product> {
    (0..24u32)
        .map(|i| Product {
            sku: format!("sku-{i:02}"),
            category: ["tools", "toys"][i as usize % 2].into(),
            rank: (i * 5) % 24,
            brand: ["acme", "globex", "initech"][i as usize % 3].into(),
            price: 100 + (i * 13) % 50,
            title: format!("Product {i}"),
            details: Details {
                color: ["red", "green"][(i / 2) as usize % 2].into(),
                dims: Dims { w: i, h: 2 * i },
            },
            stock: i % 4,
        })
        .collect()
}

#[derive(Deserialize, Debug, PartialEq, Clone)]
struct ProductKeys {
    sku: String,
    category: String,
    rank: u32,
}

#[derive(Deserialize, Debug, PartialEq, Clone)]
struct Summary {
    sku: String,
    brand: String,
    price: u32,
    title: String,
}

#[derive(Deserialize, Debug, PartialEq)]
struct DetailView {
    sku: String,
    details: PartialDetails,
}
#[derive(Deserialize, Debug, PartialEq)]
struct PartialDetails {
    color: String,
    dims: PartialDims,
}
#[derive(Deserialize, Debug, PartialEq)]
struct PartialDims {
    w: u32,
}

#[tokio::test]
async fn keys_only_and_include_projected_global_indexes() {
    let db = setup::<Product>().await;
    let data = products();
    put_all(&db, &data).await;
    let sorted_by = |pred: &dyn Fn(&Product) -> bool, key: &dyn Fn(&Product) -> u32| {
        let mut v: Vec<Product> = data.iter().filter(|p| pred(p)).cloned().collect();
        v.sort_by_key(|p| key(p));
        v
    };

    // Keys-only: whole entities come from the base table, in index order.
    let cat = || Product::find(&db).filter(Product::CATEGORY.eq("toys"));
    let plan = cat().explain().unwrap();
    assert_eq!(plan.index, Some("ByCategory"));
    assert!(plan.fetches_base_items);
    assert!(plan.to_string().contains("BatchGetItem"), "{plan}");
    let want = sorted_by(&|p| p.category == "toys", &|p| p.rank);
    assert_eq!(cat().all().await.unwrap(), want);
    assert_eq!(cat().descending().all().await.unwrap(), {
        let mut r = want.clone();
        r.reverse();
        r
    });
    assert_eq!(page_loop(5, cat).await, want);
    let streamed: Vec<Product> = cat().page_size(4).stream().try_collect().await.unwrap();
    assert_eq!(streamed, want);
    assert_eq!(cat().count().await.unwrap(), want.len());
    assert_eq!(cat().first().await.unwrap().as_ref(), want.first());
    // With a key condition on the index sort key.
    let ranked = cat().filter(Product::RANK.between(5, 15));
    assert_eq!(
        ranked.all().await.unwrap(),
        sorted_by(
            &|p| p.category == "toys" && (5..=15).contains(&p.rank),
            &|p| p.rank
        )
    );
    // The keys, projected, need no base table.
    let keys = || cat().project::<ProductKeys>();
    let plan = keys().explain().unwrap();
    assert!(!plan.fetches_base_items);
    let want_keys: Vec<ProductKeys> = want
        .iter()
        .map(|p| ProductKeys {
            sku: p.sku.clone(),
            category: p.category.clone(),
            rank: p.rank,
        })
        .collect();
    assert_eq!(keys().all().await.unwrap(), want_keys);
    assert_eq!(page_loop(5, keys).await, want_keys);

    // Include-projected: whole entities through the base table too; the projection type
    // reads the index alone, and filters on projected attributes work.
    let brand = || Product::find(&db).filter(Product::BRAND.eq("acme"));
    let plan = brand().explain().unwrap();
    assert_eq!(plan.index, Some("ByBrand"));
    assert!(plan.fetches_base_items);
    let want = sorted_by(&|p| p.brand == "acme", &|p| p.price);
    assert_eq!(brand().all().await.unwrap(), want);
    let summary = || {
        brand()
            .filter(Product::TITLE.ne("Product 3"))
            .project::<Summary>()
    };
    let plan = summary().explain().unwrap();
    assert!(!plan.fetches_base_items);
    assert_eq!(plan.filter.as_deref(), Some(r#"title <> "Product 3""#));
    let want_summary: Vec<Summary> = want
        .iter()
        .filter(|p| p.title != "Product 3")
        .map(|p| Summary {
            sku: p.sku.clone(),
            brand: p.brand.clone(),
            price: p.price,
            title: p.title.clone(),
        })
        .collect();
    assert_eq!(summary().all().await.unwrap(), want_summary);
    assert_eq!(page_loop(2, summary).await, want_summary);
    // A selection the index holds: no base read either, for the entity type.
    let plan = brand().select([Product::TITLE]).explain().unwrap();
    assert!(!plan.fetches_base_items);
    // A selection it does not hold: read through the base table.
    let plan = brand().select([Product::STOCK]).explain().unwrap();
    assert!(plan.fetches_base_items);

    // Nested selections, read from the table (GetItem and Query) and from a scan.
    let get = Product::find(&db)
        .filter(Product::SKU.eq("sku-05"))
        .project::<DetailView>()
        .select_attr(Product::DETAILS.at::<String>("color"))
        .select_attr(Product::DETAILS.at::<Dims>("dims").at::<u32>("w"));
    let plan = get.explain().unwrap();
    assert_eq!(plan.operation, Operation::GetItem);
    assert_eq!(
        plan.projection,
        Some(vec!["details.color".into(), "details.dims.w".into()])
    );
    assert_eq!(
        get.all().await.unwrap(),
        vec![DetailView {
            sku: "sku-05".into(),
            details: PartialDetails {
                color: data[5].details.color.clone(),
                dims: PartialDims { w: 5 },
            },
        }]
    );
    let scanned = Product::scan(&db)
        .filter(Product::DETAILS.at::<Dims>("dims").at::<u32>("h").gt(40))
        .project::<DetailView>()
        .select_attr(Product::DETAILS.at::<String>("color"))
        .select_attr(Product::DETAILS.at::<Dims>("dims").at::<u32>("w"))
        .unbounded()
        .all()
        .await
        .unwrap();
    let mut got: Vec<u32> = scanned.iter().map(|v| v.details.dims.w).collect();
    got.sort();
    assert_eq!(got, (21..24).collect::<Vec<_>>());
}

/// An entity whose attributes are all optional, so that a selection can be read as the entity.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "docs")]
#[dynamite(global_index(name = "ByOwner", projection = keys_only))]
struct Doc {
    #[dynamite(partition_key)]
    id: String,
    #[dynamite(index_key(index = "ByOwner", partition))]
    owner: Option<String>,
    title: Option<String>,
    meta: Option<Meta>,
    body: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Meta {
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    pages: Option<u32>,
}

fn docs() -> Vec<Doc> {
    (0..9u32)
        .map(|i| Doc {
            id: format!("doc{i}"),
            owner: Some(if i % 3 == 0 { "ann" } else { "ben" }.into()),
            title: Some(format!("Title {i}")),
            meta: Some(Meta {
                author: Some(format!("author{i}")),
                pages: Some(i * 10),
            }),
            body: Some("lorem".into()),
        })
        .collect()
}

#[tokio::test]
async fn selection_with_nested_paths_through_the_base_table() {
    let db = setup::<Doc>().await;
    let data = docs();
    put_all(&db, &data).await;
    let q = || {
        Doc::find(&db)
            .filter(Doc::OWNER.eq("ann"))
            .select_attr(Doc::TITLE)
            .select_attr(Doc::META.at::<Option<String>>("author"))
    };
    let plan = q().explain().unwrap();
    assert_eq!(plan.index, Some("ByOwner"));
    assert!(plan.fetches_base_items);
    assert_eq!(
        plan.projection,
        Some(vec!["title".into(), "meta.author".into()])
    );
    let mut got = q().all().await.unwrap();
    got.sort_by(|a, b| a.id.cmp(&b.id));
    let want: Vec<Doc> = data
        .iter()
        .filter(|d| d.owner.as_deref() == Some("ann"))
        .map(|d| Doc {
            id: d.id.clone(),
            // The index's key too: key attributes are always read (the table read projects
            // every key attribute of the find).
            owner: d.owner.clone(),
            title: d.title.clone(),
            meta: Some(Meta {
                author: d.meta.as_ref().unwrap().author.clone(),
                pages: None,
            }),
            body: None,
        })
        .collect();
    assert_eq!(got, want);
    let mut paged = page_loop(2, q).await;
    paged.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(paged, want);
    // The same selection from the table.
    let got = Doc::find(&db)
        .filter(Doc::ID.eq("doc3"))
        .select_attr(Doc::META.at::<Option<u32>>("pages"))
        .all()
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![Doc {
            id: "doc3".into(),
            owner: None,
            title: None,
            meta: Some(Meta {
                author: None,
                pages: Some(30),
            }),
            body: None,
        }]
    );
}

#[tokio::test]
async fn selecting_a_key_through_the_base_table() {
    let db = setup::<Doc>().await;
    put_all(&db, &docs()).await;
    let got = Doc::find(&db)
        .filter(Doc::OWNER.eq("ann"))
        .select_attr(Doc::ID)
        .select_attr(Doc::TITLE)
        .all()
        .await
        .unwrap();
    assert_eq!(got.len(), 3);
}

/// A keys-only *local* index holds the keys only: a find of whole entities on it must read the
/// base table (or ask DynamoDB for all attributes), like it does for a global index.
#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "threads")]
#[dynamite(local_index(name = "ByVotes", projection = keys_only))]
struct Thread {
    #[dynamite(partition_key)]
    forum: String,
    #[dynamite(sort_key)]
    id: u32,
    #[dynamite(index_key(index = "ByVotes", sort))]
    votes: u32,
    body: String,
}

#[tokio::test]
async fn whole_entities_from_a_keys_only_local_index() {
    let db = setup::<Thread>().await;
    let data: Vec<Thread> = (0..6u32)
        .map(|i| Thread {
            forum: "f".into(),
            id: i,
            votes: (i * 7) % 6,
            body: format!("post {i}"),
        })
        .collect();
    put_all(&db, &data).await;
    let got = Thread::find(&db)
        .index(Thread::BY_VOTES)
        .filter(Thread::FORUM.eq("f"))
        .all()
        .await
        .unwrap();
    let mut want = data.clone();
    want.sort_by_key(|t| t.votes);
    assert_eq!(got, want);
}

#[tokio::test]
async fn filter_on_another_index_key_through_a_global_index() {
    let db = setup::<Product>().await;
    let data = products();
    put_all(&db, &data).await;
    // ByBrand (include(title)) does not hold `rank` (a key of ByCategory only).
    let q = Product::find(&db)
        .filter(Product::BRAND.eq("acme"))
        .filter(Product::RANK.lt(12));
    let want: Vec<&Product> = data
        .iter()
        .filter(|p| p.brand == "acme" && p.rank < 12)
        .collect();
    assert!(!want.is_empty());
    match q.all().await {
        // Either refused before sending, like a filter on `stock`...
        Err(Error::InvalidQuery { .. }) => {}
        // ... or the right items.
        Ok(got) => assert_eq!(got.len(), want.len(), "got {got:?}"),
        Err(e) => panic!("{e:?}"),
    }
}
