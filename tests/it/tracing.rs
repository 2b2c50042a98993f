//! Every operation runs in one `dynamite` span carrying table, entity, operation and consumed
//! capacity.

use dynamite::Entity;
use serde::{Deserialize, Serialize};

use crate::support;
use crate::support::trace::Capture;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "traced")]
struct Traced {
    #[dynamite(partition_key)]
    id: String,
}

#[tokio::test]
async fn one_span_per_operation_with_table_and_capacity() {
    let capture = Capture::default();
    let _guard = capture.install();

    let db = support::client().await;
    Traced::create_table(&db).await.unwrap();
    Traced { id: "a".into() }.put(&db).await.unwrap();
    Traced::get(&db, Traced::key("a")).await.unwrap();
    let _ = Traced::get(&db, Traced::key("")).await; // rejected before sending: no span

    let spans = capture.spans();
    let ops: Vec<&str> = spans.iter().map(|s| s["operation"].as_str()).collect();
    assert_eq!(ops.first(), Some(&"CreateTable"));
    assert_eq!(&ops[ops.len() - 2..], &["PutItem", "GetItem"]);
    let get = spans.last().unwrap();
    assert_eq!(get["table"], db.table_name("traced"));
    assert_eq!(get["entity"], "Traced");
    let units: f64 = get
        .get("consumed_capacity")
        .expect("consumed capacity recorded")
        .parse()
        .unwrap();
    assert!(units > 0.0, "{units}");
}
