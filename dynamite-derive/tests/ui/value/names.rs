// Stored names come from serde's rules: two variants may not end up under one name, and an
// unknown rule is refused.

#[derive(dynamite::Value)]
#[serde(rename_all = "lowercase")]
enum Size {
    Small,
    #[serde(rename = "small")]
    Tiny,
}

#[derive(dynamite::Value)]
#[serde(rename_all = "Title Case")]
enum Colour {
    Red,
}

fn main() {}
