//! Fixtures shared by the integration tests.
//!
//! A test file includes this module as `pub mod common;` and uses what it
//! needs. No test binary uses all of it, and the items of a public module are
//! not reported as unused, so the module needs no `allow(dead_code)`; in
//! exchange, whoever removes the last use of a fixture removes the fixture.
//!
//! - [`sim`]: options for stores on the simulated file system;
//! - [`damage`]: a small store built once and damaged file by file;
//! - [`process`]: child processes of a test binary, and the store lock they
//!   may hold for a moment.
//!
//! `sim` and `damage` use the simulated file system of the `sim` feature; the
//! tests that use them require that feature (engine/Cargo.toml), and the
//! others build without it.

#[cfg(feature = "sim")]
pub mod damage;
pub mod process;
#[cfg(feature = "sim")]
pub mod sim;

use spool::{Durability, Options, Store};
use tempfile::TempDir;

/// A store in a new temporary directory, which goes when the `TempDir` is
/// dropped.
pub fn temp_store(options: Options) -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options).unwrap();
    (dir, store)
}

/// A store with `Durability::Never` in a new temporary directory: for tests
/// of behaviour, which need no syncs.
pub fn scratch_store() -> (TempDir, Store) {
    temp_store(Options::default().durability(Durability::Never))
}

/// The environment variable `name`, parsed; `None` when it is unset or does
/// not parse.
pub fn env_parsed<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The configuration of the proptest model tests: `default_cases` cases, or
/// `PROPTEST_CASES` (100000 for the on-demand size); no file of failures.
pub fn proptest_config(default_cases: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: env_parsed("PROPTEST_CASES").unwrap_or(default_cases),
        failure_persistence: None,
        ..Default::default()
    }
}

/// Xorshift64 (shifts 13, 7, 17): a small deterministic generator. The state
/// must not be zero.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `0..n` (`0` for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
