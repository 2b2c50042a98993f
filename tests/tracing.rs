//! Every operation runs in one `dynamite` span carrying table, entity, operation and consumed
//! capacity.

mod common;

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use dynamite::Entity;
use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "traced")]
struct Traced {
    #[dynamite(partition_key)]
    id: String,
}

type Spans = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// Collects the fields of every `dynamite` span, including those recorded later.
#[derive(Clone, Default)]
struct Capture {
    spans: Spans,
    open: Arc<Mutex<HashMap<u64, usize>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);
impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if attrs.metadata().name() != "dynamite" {
            return;
        }
        let mut fields = HashMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(fields);
        self.open
            .lock()
            .unwrap()
            .insert(id.into_u64(), spans.len() - 1);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(&i) = self.open.lock().unwrap().get(&id.into_u64()) {
            values.record(&mut Fields(&mut self.spans.lock().unwrap()[i]));
        }
    }
}

#[tokio::test]
async fn one_span_per_operation_with_table_and_capacity() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = common::client().await;
    Traced::create_table(&db).await.unwrap();
    Traced { id: "a".into() }.put(&db).await.unwrap();
    Traced::get(&db, Traced::key("a")).await.unwrap();
    let _ = Traced::get(&db, Traced::key("")).await; // rejected before sending: no span

    let spans = capture.spans.lock().unwrap();
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
