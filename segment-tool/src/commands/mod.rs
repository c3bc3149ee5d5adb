//! One module per command. Each command writes its results to the writer it
//! is given and returns an [`Outcome`]; errors come back as [`Failure`].

pub mod consumers;
pub mod dump;
pub mod info;
pub mod repair;
pub mod tail;
pub mod verify;

use crate::cli::{Cli, Command};
use std::io::{self, Write};
use std::process::ExitCode;

/// How a command that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing wrong found: exit status 0.
    Clean,
    /// Problems found in the store: exit status 1.
    Problems,
}

/// Why a command could not run to its end.
#[derive(Debug)]
pub enum Failure {
    /// The engine could not read the store.
    Spool(spool::Error),
    /// Writing the output failed.
    Output(io::Error),
    /// A usage error or refusal, in words (exit status 2).
    Message(String),
}

impl From<spool::Error> for Failure {
    fn from(e: spool::Error) -> Self {
        Failure::Spool(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Output(e)
    }
}

/// What the process ends with.
#[derive(Debug)]
pub struct Exit(ExitCode);

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        e.0
    }
}

/// Runs the command of `cli` with buffered stdout and maps the result to an
/// exit status, printing errors on stderr.
pub fn run(cli: Cli) -> Exit {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = match cli.command {
        Command::Info(args) => info::run(&args, &mut out),
        Command::Consumers(args) => consumers::run(&args, &mut out),
        Command::Dump(args) => dump::run(&args, &mut out),
        Command::Verify(args) => verify::run(&args, &mut out),
        Command::Repair(args) => repair::run(&args, &mut out),
        Command::Tail(args) => tail::run(&args, &mut out),
    };
    let result = result.and_then(|o| {
        out.flush()?;
        Ok(o)
    });
    Exit(match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Problems) => ExitCode::from(1),
        // The reader went away (`| head`): not an error.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(Failure::Output(e)) => {
            eprintln!("segment-tool: writing output: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Message(m)) => {
            eprintln!("segment-tool: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Spool(e)) => {
            eprintln!("segment-tool: {}", chain(&e));
            ExitCode::from(2)
        }
    })
}

/// An error and its sources, joined with `: `, skipping a source whose text
/// the error's own message already contains.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}
