//! Compile-time behaviour of `#[derive(Entity)]`: misuse is a spanned compile error, grouped by
//! topic, and a struct using every supported attribute compiles and records the expected schema.
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/keys/*.rs");
    t.compile_fail("tests/ui/indexes/*.rs");
    t.compile_fail("tests/ui/attributes/*.rs");
    t.compile_fail("tests/ui/serde/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
