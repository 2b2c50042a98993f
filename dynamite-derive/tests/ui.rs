//! Compile-time behaviour of `#[derive(Entity)]` and `#[derive(Value)]`: misuse is a spanned compile error, grouped by
//! topic. (The struct using every supported attribute is `tests/derive_full_entity.rs` in the
//! `dynamite` crate: with no "pass" case here, trybuild only checks its dependencies, and checks
//! all cases in one run.)
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p dynamite-derive --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/keys/*.rs");
    t.compile_fail("tests/ui/indexes/*.rs");
    t.compile_fail("tests/ui/attributes/*.rs");
    t.compile_fail("tests/ui/serde/*.rs");
    t.compile_fail("tests/ui/cache/*.rs");
    t.compile_fail("tests/ui/streams/*.rs");
    t.compile_fail("tests/ui/value/*.rs");
}
