// #[derive(Value)] takes a unit-only enum or a newtype: every other shape is refused, all at once.

#[derive(dynamite::Value)]
enum Status {
    Open,
    Held(String),
    Closed { at: i64 },
}

#[derive(dynamite::Value)]
struct Pair(String, String);

#[derive(dynamite::Value)]
struct Named {
    sku: String,
}

#[derive(dynamite::Value)]
struct Wrapper<T>(T);

#[derive(dynamite::Value)]
enum Never {}

fn main() {}
