//! Item conversion: `#[derive(Entity)]` against `serde_dynamo` and a hand-written conversion of
//! the same struct, in both directions.
//!
//! `cargo bench --bench item -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;

use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use dynamite::{Entity, Item};
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    name: String,
    email: String,
    age: u32,
    score: f64,
    active: bool,
    created_at: i64,
    tags: Vec<String>,
    attrs: HashMap<String, String>,
    nickname: Option<String>,
}

fn user() -> User {
    User {
        id: "user-7f3a9c2e-1b4d-4e8a-9c6f-2d5e8b1a3f70".to_owned(),
        name: "Ada Lovelace".to_owned(),
        email: "ada.lovelace@example.com".to_owned(),
        age: 36,
        score: 1234.5678,
        active: true,
        created_at: 1_732_147_200,
        tags: vec!["admin".to_owned(), "beta".to_owned(), "math".to_owned()],
        attrs: HashMap::from([
            ("locale".to_owned(), "en-GB".to_owned()),
            ("theme".to_owned(), "dark".to_owned()),
            ("plan".to_owned(), "pro".to_owned()),
        ]),
        nickname: Some("Countess".to_owned()),
    }
}

/// What a careful engineer writes by hand.
mod hand_written {
    use super::*;

    pub(crate) fn to_item(u: &User) -> Item {
        let mut item = HashMap::with_capacity(10);
        item.insert("id".to_owned(), AttributeValue::S(u.id.clone()));
        item.insert("name".to_owned(), AttributeValue::S(u.name.clone()));
        item.insert("email".to_owned(), AttributeValue::S(u.email.clone()));
        item.insert("age".to_owned(), AttributeValue::N(u.age.to_string()));
        item.insert("score".to_owned(), AttributeValue::N(u.score.to_string()));
        item.insert("active".to_owned(), AttributeValue::Bool(u.active));
        item.insert(
            "created_at".to_owned(),
            AttributeValue::N(u.created_at.to_string()),
        );
        item.insert(
            "tags".to_owned(),
            AttributeValue::L(u.tags.iter().cloned().map(AttributeValue::S).collect()),
        );
        item.insert(
            "attrs".to_owned(),
            AttributeValue::M(
                u.attrs
                    .iter()
                    .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                    .collect(),
            ),
        );
        if let Some(nickname) = &u.nickname {
            item.insert("nickname".to_owned(), AttributeValue::S(nickname.clone()));
        }
        item
    }

    #[derive(Debug)]
    pub(crate) struct Error(#[allow(dead_code)] String);

    #[cold]
    fn error(name: &str, expected: &str, found: Option<&AttributeValue>) -> Error {
        Error(format!("{name}: expected {expected}, found {found:?}"))
    }

    fn string(value: AttributeValue, name: &str) -> Result<String, Error> {
        match value {
            AttributeValue::S(s) => Ok(s),
            other => Err(error(name, "S", Some(&other))),
        }
    }

    fn take_string(item: &mut Item, name: &str) -> Result<String, Error> {
        match item.remove(name) {
            Some(value) => string(value, name),
            None => Err(error(name, "S", None)),
        }
    }

    fn take_number<T: std::str::FromStr>(item: &mut Item, name: &str) -> Result<T, Error> {
        match item.remove(name) {
            Some(AttributeValue::N(n)) => n.parse().map_err(|_| error(name, "a number", None)),
            other => Err(error(name, "N", other.as_ref())),
        }
    }

    pub(crate) fn from_item(mut item: Item) -> Result<User, Error> {
        Ok(User {
            id: take_string(&mut item, "id")?,
            name: take_string(&mut item, "name")?,
            email: take_string(&mut item, "email")?,
            age: take_number(&mut item, "age")?,
            score: take_number(&mut item, "score")?,
            active: match item.remove("active") {
                Some(AttributeValue::Bool(b)) => b,
                other => return Err(error("active", "BOOL", other.as_ref())),
            },
            created_at: take_number(&mut item, "created_at")?,
            tags: match item.remove("tags") {
                Some(AttributeValue::L(list)) => list
                    .into_iter()
                    .map(|v| string(v, "tags"))
                    .collect::<Result<_, _>>()?,
                other => return Err(error("tags", "L", other.as_ref())),
            },
            attrs: match item.remove("attrs") {
                Some(AttributeValue::M(map)) => map
                    .into_iter()
                    .map(|(k, v)| Ok((k, string(v, "attrs")?)))
                    .collect::<Result<_, _>>()?,
                other => return Err(error("attrs", "M", other.as_ref())),
            },
            nickname: item
                .remove("nickname")
                .map(|v| string(v, "nickname"))
                .transpose()?,
        })
    }
}

fn check_equivalent(u: &User) {
    let ours = u.to_item().unwrap();
    let serde: Item = serde_dynamo::to_item(u).unwrap();
    let hand = hand_written::to_item(u);
    assert_eq!(ours, serde, "dynamite and serde_dynamo items differ");
    assert_eq!(ours, hand, "dynamite and hand-written items differ");
    assert_eq!(User::from_item(ours.clone()).unwrap(), *u);
    assert_eq!(
        serde_dynamo::from_item::<_, User>(ours.clone()).unwrap(),
        *u
    );
    assert_eq!(hand_written::from_item(ours).unwrap(), *u);
}

fn bench_to_item(c: &mut Criterion) {
    let u = user();
    check_equivalent(&u);
    let mut group = c.benchmark_group("to_item");
    group.bench_function("dynamite", |b| b.iter(|| black_box(&u).to_item().unwrap()));
    group.bench_function("serde_dynamo", |b| {
        b.iter(|| serde_dynamo::to_item::<_, Item>(black_box(&u)).unwrap())
    });
    group.bench_function("hand_written", |b| {
        b.iter(|| hand_written::to_item(black_box(&u)))
    });
    group.finish();
}

fn bench_from_item(c: &mut Criterion) {
    let u = user();
    check_equivalent(&u);
    let item = u.to_item().unwrap();
    let mut group = c.benchmark_group("from_item");
    group.bench_function("dynamite", |b| {
        b.iter_batched(
            || item.clone(),
            |item| User::from_item(item).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("serde_dynamo", |b| {
        b.iter_batched(
            || item.clone(),
            |item| serde_dynamo::from_item::<_, User>(item).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("hand_written", |b| {
        b.iter_batched(
            || item.clone(),
            |item| hand_written::from_item(item).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench_to_item, bench_from_item);
criterion_main!(benches);
