//! Priority queue: a stream with several priority levels keeps one FIFO log
//! per level, each with its own offsets; a consumer serves the highest level
//! that has a message first. With a `starvation_limit`, a lower level still
//! gets a turn while higher ones keep coming.
//!
//! ```text
//! cargo run --release --example priority               # on a temporary store
//! cargo run --release --example priority -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Consumer, ConsumerConfig, Message, Options, Store, StreamConfig};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const LOW: u8 = 0;
const NORMAL: u8 = 1;
const HIGH: u8 = 2;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);

    let store = Store::open(&dir, Options::default())?;
    check(
        store.streams().is_empty(),
        "the store is new (give a new directory)",
    )?;

    // 1. Three levels, fixed when the stream is created: 0 (low) ..= 2 (high).
    let tasks = store.create_stream("tasks", StreamConfig::default().priorities(3))?;
    let sent = [
        ("rebuild search index", LOW),
        ("send invoice", NORMAL),
        ("clean temp files", LOW),
        ("page the on-call", HIGH),
        ("email weekly report", NORMAL),
    ];
    for (text, p) in sent {
        // Offsets count per level: each level is a log of its own.
        let offset = tasks.send_message(Message::new(text).priority(p))?;
        println!("sent priority {p} offset {offset}: {text:?}");
    }
    check(
        tasks.stats().buckets[NORMAL as usize].end_offset == 2,
        "level 1 holds 2",
    )?;

    // 2. Highest level first, FIFO within a level.
    let got = drain(&tasks.consumer("scheduler")?)?;
    check(
        got == [
            (HIGH, "page the on-call".to_string()),
            (NORMAL, "send invoice".to_string()),
            (NORMAL, "email weekly report".to_string()),
            (LOW, "rebuild search index".to_string()),
            (LOW, "clean temp files".to_string()),
        ],
        "highest level first, FIFO within a level",
    )?;
    for (p, text) in &got {
        println!("scheduler got priority {p}: {text:?}");
    }

    // 3. Strict priority would serve 6 high messages before 2 low ones. With a
    //    starvation limit of 2, after 2 picks of a higher level while a lower one
    //    waits, the lower level is served once.
    let builds = store.create_stream("builds", StreamConfig::default().priorities(2))?;
    let mut batch = vec![Message::new("nightly build").priority(0); 2];
    batch.extend(vec![Message::new("hotfix build").priority(1); 6]);
    builds.send_batch(batch)?;
    let fair = builds.consumer_with("fair", ConsumerConfig::default().starvation_limit(2))?;
    let levels: Vec<u8> = drain(&fair)?.into_iter().map(|(p, _)| p).collect();
    check(
        levels == [1, 1, 0, 1, 1, 0, 1, 1],
        "2 high, 1 low, 2 high, 1 low, then the rest",
    )?;
    println!("with starvation_limit(2), levels in delivery order: {levels:?}");
    Ok(())
}

/// Receives and acknowledges everything available, returning (priority, payload).
fn drain(c: &Consumer) -> Result<Vec<(u8, String)>> {
    let mut got = Vec::new();
    while let Some(d) = c.receive(Duration::from_millis(100))? {
        got.push((
            d.priority(),
            String::from_utf8_lossy(d.payload()).into_owned(),
        ));
        d.ack()?;
    }
    Ok(got)
}

/// Ends the program with an error unless `ok`.
fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
