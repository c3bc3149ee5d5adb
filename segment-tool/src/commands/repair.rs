//! `repair`: fix what can be fixed without losing acknowledged data, under
//! the store's lock (see `spool::inspect::repair`).
//!
//! JSON Lines output:
//!
//! | type | data |
//! |---|---|
//! | `action` | `action` (text), `done` (false with `--dry-run`) |
//! | `refused` | `file`, `position`, `reason` (problems left alone) |
//! | `summary` | `actions`, `refused`, `dry_run` |

use super::info::problem_json;
use super::{Failure, Outcome};
use crate::cli::{Format, RepairArgs};
use crate::output::json_line;
use serde_json::json;
use spool::inspect::repair::{self, Force};
use std::io::Write;
use std::path::PathBuf;

fn parse_force(s: &str) -> Result<Force, Failure> {
    let bad = || {
        Failure::Message(format!(
            "--force-truncate-at {s:?}: expected FILE:POSITION (a segment file and a byte position)"
        ))
    };
    let (file, pos) = s.rsplit_once(':').ok_or_else(bad)?;
    let position: u64 = pos.parse().map_err(|_| bad())?;
    if file.is_empty() {
        return Err(bad());
    }
    Ok(Force {
        segment: PathBuf::from(file),
        position,
    })
}

/// Repairs the store (or says what it would do).
pub fn run(args: &RepairArgs, out: &mut dyn Write) -> Result<Outcome, Failure> {
    let force = args
        .force_truncate_at
        .as_deref()
        .map(parse_force)
        .transpose()?;
    let _lock = match repair::lock(&args.store) {
        Ok(l) => l,
        Err(spool::Error::Locked { .. }) => {
            return Err(Failure::Message(format!(
                "{}: store is in use (another process holds its lock); close it first",
                args.store.display()
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let plan = match repair::plan(&args.store, force.as_ref()) {
        Ok(p) => p,
        Err(e @ spool::Error::Corrupt { .. }) if force.is_some() => {
            return Err(Failure::Message(super::chain(&e)))
        }
        Err(e) => return Err(e.into()),
    };
    let done = !args.dry_run;
    if done {
        repair::apply(&plan)?;
    }
    let verb = if done { "done" } else { "would do" };
    match args.format {
        Format::Human => {
            for a in &plan.actions {
                writeln!(out, "{verb}: {a}")?;
            }
            for p in &plan.refused {
                writeln!(out, "not repaired: {p}")?;
            }
            writeln!(
                out,
                "{} {} actions, {} problems not repaired",
                if done { "repair:" } else { "dry run:" },
                plan.actions.len(),
                plan.refused.len()
            )?;
        }
        Format::Json => {
            for a in &plan.actions {
                json_line(
                    out,
                    "action",
                    json!({ "action": a.to_string(), "done": done }),
                )?;
            }
            for p in &plan.refused {
                json_line(out, "refused", problem_json(p))?;
            }
            json_line(
                out,
                "summary",
                json!({
                    "actions": plan.actions.len(),
                    "refused": plan.refused.len(),
                    "dry_run": args.dry_run,
                }),
            )?;
        }
    }
    Ok(if plan.refused.is_empty() {
        Outcome::Clean
    } else {
        Outcome::Problems
    })
}
