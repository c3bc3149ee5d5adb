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

pub mod damage;
pub mod process;
pub mod sim;
