use dynamite::Entity;
use serde::{Deserialize, Serialize};

mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Entity, Serialize, Deserialize)]
#[dynamite(table = "users")]
struct User {
    #[dynamite(partition_key)]
    id: String,
    #[serde(with = "as_text")]
    logins: u64,
}

fn main() {}
