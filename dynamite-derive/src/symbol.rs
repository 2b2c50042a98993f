//! The names the derive recognises inside `#[dynamite(...)]` and `#[serde(...)]`, one constant
//! each, so that parsing, error messages and tests spell every name in exactly one place.
//!
//! A [`Symbol`] compares equal to a `syn::Ident` with the same text and to a `syn::Path` that is
//! exactly that one identifier (`ttl`, not `a::ttl`), which is how attribute options are matched.

use std::fmt::{self, Display};

use syn::{Ident, Path};

/// An attribute or option name.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub(crate) struct Symbol(&'static str);

/// The attribute the derive owns.
pub(crate) const DYNAMITE: Symbol = Symbol("dynamite");
/// serde's attribute, read for what changes the shape of an item.
pub(crate) const SERDE: Symbol = Symbol("serde");

// `#[dynamite(...)]` on the struct.
/// `table = "..."`.
pub(crate) const TABLE: Symbol = Symbol("table");
/// `global_index(name = "...", projection = ...)`.
pub(crate) const GLOBAL_INDEX: Symbol = Symbol("global_index");
/// `index(...)`: another name for `global_index(...)`.
pub(crate) const INDEX: Symbol = Symbol("index");
/// `local_index(name = "...", projection = ...)`.
pub(crate) const LOCAL_INDEX: Symbol = Symbol("local_index");
/// `cache(ttl = "..", negative_ttl = "..", queries)` or `cache(off)`.
pub(crate) const CACHE: Symbol = Symbol("cache");
/// `stream = "new_and_old_images"`: the table's stream, enabled by `create_table`.
pub(crate) const STREAM: Symbol = Symbol("stream");

// Inside `global_index(...)` / `local_index(...)`.
/// `name = "..."`.
pub(crate) const NAME: Symbol = Symbol("name");
/// `projection = all | keys_only | include(field, ...)`.
pub(crate) const PROJECTION: Symbol = Symbol("projection");
/// `projection = all`.
pub(crate) const ALL: Symbol = Symbol("all");
/// `projection = keys_only`.
pub(crate) const KEYS_ONLY: Symbol = Symbol("keys_only");
/// `projection = include(field, ...)`.
pub(crate) const INCLUDE: Symbol = Symbol("include");

// Inside `cache(...)`.
/// `off`: never cache this entity.
pub(crate) const OFF: Symbol = Symbol("off");
/// `queries`: cache query pages too.
pub(crate) const QUERIES: Symbol = Symbol("queries");
/// `negative_ttl = "..."`: how long a miss is remembered.
pub(crate) const NEGATIVE_TTL: Symbol = Symbol("negative_ttl");
/// `ttl = "..."` inside `cache(...)`; on a field, `ttl` marks the TTL attribute.
pub(crate) const TTL: Symbol = Symbol("ttl");

// `#[dynamite(...)]` on a field.
/// `partition_key`.
pub(crate) const PARTITION_KEY: Symbol = Symbol("partition_key");
/// `hash_key`: another name for `partition_key`.
pub(crate) const HASH_KEY: Symbol = Symbol("hash_key");
/// `sort_key`.
pub(crate) const SORT_KEY: Symbol = Symbol("sort_key");
/// `range_key`: another name for `sort_key`.
pub(crate) const RANGE_KEY: Symbol = Symbol("range_key");
/// `version`: the optimistic-locking version attribute.
pub(crate) const VERSION: Symbol = Symbol("version");
/// `created_at`: stamped (epoch ms) when a write creates the item.
pub(crate) const CREATED_AT: Symbol = Symbol("created_at");
/// `updated_at`: stamped (epoch ms) by every write.
pub(crate) const UPDATED_AT: Symbol = Symbol("updated_at");
/// `index_key(index = "...", partition | sort)`.
pub(crate) const INDEX_KEY: Symbol = Symbol("index_key");

// Inside `index_key(...)` (`index = "..."` is [`INDEX`]).
/// `partition`.
pub(crate) const PARTITION: Symbol = Symbol("partition");
/// `hash`: another name for `partition`.
pub(crate) const HASH: Symbol = Symbol("hash");
/// `sort`.
pub(crate) const SORT: Symbol = Symbol("sort");
/// `range`: another name for `sort`.
pub(crate) const RANGE: Symbol = Symbol("range");

// `#[serde(...)]` on the struct.
/// `rename_all = "..."`.
pub(crate) const RENAME_ALL: Symbol = Symbol("rename_all");
/// `deny_unknown_fields`.
pub(crate) const DENY_UNKNOWN_FIELDS: Symbol = Symbol("deny_unknown_fields");
/// `crate = "..."`.
pub(crate) const CRATE: Symbol = Symbol("crate");
/// `expecting = "..."`.
pub(crate) const EXPECTING: Symbol = Symbol("expecting");

// `#[serde(...)]` on the struct or a field.
/// `rename = "..."` or `rename(serialize = "..", deserialize = "..")`.
pub(crate) const RENAME: Symbol = Symbol("rename");
/// `bound = "..."`.
pub(crate) const BOUND: Symbol = Symbol("bound");

// `#[serde(...)]` on a field.
/// `rename(serialize = "...")`.
pub(crate) const SERIALIZE: Symbol = Symbol("serialize");
/// `rename(deserialize = "...")`.
pub(crate) const DESERIALIZE: Symbol = Symbol("deserialize");
/// `alias = "..."`.
pub(crate) const ALIAS: Symbol = Symbol("alias");
/// `default` or `default = "path"`.
pub(crate) const DEFAULT: Symbol = Symbol("default");
/// `skip`.
pub(crate) const SKIP: Symbol = Symbol("skip");
/// `skip_serializing_if = "path"`.
pub(crate) const SKIP_SERIALIZING_IF: Symbol = Symbol("skip_serializing_if");
/// `borrow`.
pub(crate) const BORROW: Symbol = Symbol("borrow");
/// `getter = "..."`.
pub(crate) const GETTER: Symbol = Symbol("getter");

impl PartialEq<Symbol> for Ident {
    fn eq(&self, word: &Symbol) -> bool {
        self == word.0
    }
}

impl PartialEq<Symbol> for &Ident {
    fn eq(&self, word: &Symbol) -> bool {
        *self == word.0
    }
}

impl PartialEq<Symbol> for Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl PartialEq<Symbol> for &Path {
    fn eq(&self, word: &Symbol) -> bool {
        self.is_ident(word.0)
    }
}

impl Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Path {
        syn::parse_str(text).expect("a path")
    }

    fn ident(text: &str) -> Ident {
        syn::parse_str(text).expect("an identifier")
    }

    #[test]
    fn matches_an_ident_with_the_same_text() {
        assert!(ident("ttl") == TTL);
        let by_ref = &ident("ttl");
        assert!(by_ref == TTL);
        assert!(ident("ttl") != VERSION);
        assert!(ident("Ttl") != TTL);
        // A raw identifier is spelled differently, so it is not the option.
        assert!(ident("r#version") != VERSION);
    }

    #[test]
    fn matches_only_a_single_segment_path() {
        assert!(path("partition_key") == PARTITION_KEY);
        let by_ref = &path("partition_key");
        assert!(by_ref == PARTITION_KEY);
        assert!(path("dynamite::partition_key") != PARTITION_KEY);
        assert!(path("::partition_key") != PARTITION_KEY);
        assert!(path("partition_key") != SORT_KEY);
    }

    #[test]
    fn displays_as_written() {
        assert_eq!(NEGATIVE_TTL.to_string(), "negative_ttl");
        assert_eq!(format!("`{KEYS_ONLY}`"), "`keys_only`");
        assert_eq!(DYNAMITE.to_string(), "dynamite");
    }
}
