//! What must not compile, with the messages users see (`tests/ui/*.stderr`). Regenerate the
//! expected output with `TRYBUILD=overwrite cargo test -p plenum-tests --test compile_fail` and
//! review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/*.rs");
}
