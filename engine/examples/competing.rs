//! Competing consumers: worker threads sharing one consumer name split the
//! work; each message is leased to one of them at a time and, once
//! acknowledged, never handed out again. A message that keeps failing goes to
//! a dead-letter stream after `max_deliveries` attempts.
//!
//! ```text
//! cargo run --release --example competing               # on a temporary store
//! cargo run --release --example competing -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{dead_letter_headers, ConsumerConfig, Message, Options, Store};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const WORKERS: usize = 3;

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
    let images = store.stream("images")?;

    // 20 images in one batch (one write, one sync); number 13 cannot be decoded.
    let names: Vec<String> = (0..20).map(|i| format!("image-{i:02}.png")).collect();
    let offsets = images.send_batch(names.iter().map(Message::new))?;
    println!(
        "sent {} images, offsets {:?}..={:?}",
        names.len(),
        offsets[0],
        offsets[19]
    );

    // One consumer, "thumbnailer": a message delivered 3 times without an ack goes
    // to "images.dead". Clones of the handle (or `images.consumer("thumbnailer")` on
    // any thread) all share its state.
    let thumbnailer = images.consumer_with(
        "thumbnailer",
        ConsumerConfig::default()
            .max_deliveries(3)
            .dead_letter("images.dead"),
    )?;
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let c = thumbnailer.clone();
            std::thread::spawn(move || -> spool::Result<Vec<u64>> {
                let mut done = Vec::new();
                while let Some(d) = c.receive(Duration::from_millis(200))? {
                    if d.payload() == b"image-13.png" {
                        d.nack_with(None, Some("not a PNG file"))?;
                    } else {
                        done.push(d.offset());
                        d.ack()?;
                    }
                }
                Ok(done)
            })
        })
        .collect();

    let mut all = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        let done = w.join().map_err(|_| "a worker panicked")??;
        println!(
            "worker {i} made {:>2} thumbnails: offsets {done:?}",
            done.len()
        );
        all.extend(done);
    }

    // Every good image was handled exactly once, by one worker or another.
    all.sort_unstable();
    let mut good = offsets.clone();
    good.remove(13);
    check(
        all == good,
        "each of the 19 good images handled exactly once",
    )?;
    println!("together: each of the 19 good images exactly once");

    // The bad one was tried 3 times, then moved to the dead-letter stream with
    // headers saying where it came from and why it failed.
    let stats = thumbnailer.stats();
    check(
        stats.pending() == 0 && stats.dead_lettered == 1 && stats.redelivered == 2,
        "nothing pending, one dead letter after 2 redeliveries",
    )?;
    let dead = store.stream("images.dead")?;
    let letter = dead.read(0)?.ok_or("no dead letter")?;
    let header = |k| String::from_utf8_lossy(letter.header(k).unwrap_or_default()).into_owned();
    check(
        letter.payload() == b"image-13.png"
            && header(dead_letter_headers::ATTEMPTS) == "3"
            && header(dead_letter_headers::REASON) == "not a PNG file"
            && header(dead_letter_headers::OFFSET) == offsets[13].to_string(),
        "the dead letter is image 13, with its attempts, reason and offset",
    )?;
    println!(
        "dead letter: {:?} from {} offset {} after {} attempts ({:?})",
        String::from_utf8_lossy(letter.payload()),
        header(dead_letter_headers::STREAM),
        header(dead_letter_headers::OFFSET),
        header(dead_letter_headers::ATTEMPTS),
        header(dead_letter_headers::REASON),
    );
    Ok(())
}

/// Ends the program with an error unless `ok`.
fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
