//! Build script of the crates whose tests include PostgreSQL-only tests: sets
//! `cfg(postgres_tests)` when `LATCHKEY_TEST_POSTGRES_URL` is set at build time.
//!
//! A PostgreSQL-only test is marked `#[cfg_attr(not(postgres_tests), ignore = "…")]`, so
//! without the variable it is reported as ignored, never as a pass that tested nothing; with
//! it, the test runs and fails when PostgreSQL does not answer.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(postgres_tests)");
    println!("cargo::rerun-if-env-changed=LATCHKEY_TEST_POSTGRES_URL");
    if std::env::var_os("LATCHKEY_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=postgres_tests");
    }
}
