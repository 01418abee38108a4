//! Compile-fail tests: the type-level promises of `Pii<T>` hold (trybuild, reviewed `.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
