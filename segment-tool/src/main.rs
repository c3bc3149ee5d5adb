//! `segment-tool`: inspect a Spool store from the command line.
//!
//! It reads the store through `spool::inspect` (plain reads, no lock), so it
//! works on a store that another process has open and is writing.
//!
//! Exit status: 0 = fine, 1 = problems found, 2 = usage or I/O error. Errors
//! go to stderr prefixed with `segment-tool:`. A closed pipe (`| head`) ends
//! the output quietly with status 0.

#![deny(unsafe_code)]

mod cli;
mod commands;
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors to
            // stderr with status 2.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    commands::run(cli).into()
}
