//! Deduplication by message id: a producer whose send timed out (it cannot
//! know whether the message was stored) sends it again with the same id;
//! the retry stores nothing and returns the first one's offset, also after
//! the store was closed and reopened in between, in a batch, and after the
//! first one was consumed and deleted by retention (its id is kept until
//! the window passes).
//!
//! ```text
//! cargo run --release --example dedup               # a temporary store
//! cargo run --release --example dedup -- my-store   # ./my-store
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Message, Options, Store, StreamConfig};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: &str) -> Result {
    if ok {
        println!("  ok: {what}");
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let config = StreamConfig::default().dedup_window(Duration::from_secs(600));

    println!("1. a send, then its retry after a (simulated) timeout");
    let first = {
        let store = Store::open(&dir, Options::default())?;
        let payments = store.stream_with("payments", config.clone())?;
        let end = payments.stats().messages();
        let first = payments.send_message(Message::new(b"charge 42 EUR").id("payment-7781"))?;
        // The producer's RPC timed out here: it retries with the same id.
        let retry = payments.send_message(Message::new(b"charge 42 EUR").id("payment-7781"))?;
        check(retry == first, "the retry got the first one's offset")?;
        check(
            payments.stats().messages() == end + 1,
            "and stored nothing: one message in the log",
        )?;
        store.close()?;
        first
    };

    println!("2. the retry after a restart of the store");
    let store = Store::open(&dir, Options::default())?;
    let payments = store.stream_with("payments", config.clone())?;
    let end = payments.stats().messages();
    let again = payments.send_message(Message::new(b"charge 42 EUR").id("payment-7781"))?;
    check(again == first, "the window was rebuilt at open")?;
    check(payments.stats().messages() == end, "nothing stored")?;

    println!("3. a batch with a retried id and a duplicate inside it");
    let offsets = payments.send_batch([
        Message::new(b"charge 42 EUR").id("payment-7781"),
        Message::new(b"charge 9 EUR").id("payment-7782"),
        Message::new(b"charge 9 EUR").id("payment-7782"),
    ])?;
    check(offsets[0] == first, "the old id: its offset")?;
    check(
        offsets[1] == offsets[2],
        "the duplicate inside: the first's offset",
    )?;
    check(payments.stats().messages() == end + 1, "one message stored")?;

    println!("4. messages without an id are never deduplicated");
    let a = payments.send(b"heartbeat")?;
    let b = payments.send(b"heartbeat")?;
    check(a != b, "two sends, two messages")?;
    store.close()?;

    println!("5. the retry after the original was consumed, deleted and the store restarted");
    // Small segments, so that a few hundred messages fill several.
    let small = || Options::default().segment_bytes_max(64 * 1024);
    let (first, end) = {
        let store = Store::open(&dir, small())?;
        let invoices = store.stream_with("invoices", config.clone())?;
        let billing = invoices.consumer("billing")?;
        let mut offsets = Vec::new();
        for i in 0..300 {
            let id = format!("invoice-{i}");
            offsets.push(invoices.send_message(Message::new(&[b'x'; 600]).id(&id))?);
        }
        let last = offsets[offsets.len() - 1];
        billing.ack_up_to(0, last)?;
        invoices.apply_retention()?;
        let stats = &invoices.stats().buckets[0];
        check(
            stats.first_offset > offsets[0],
            "retention deleted the consumed segments",
        )?;
        check(
            stats.kept_id_files > 0,
            "their ids are kept (within the window)",
        )?;
        store.close()?;
        (offsets[0], last + 1)
    };
    let store = Store::open(&dir, small())?;
    let invoices = store.stream_with("invoices", config)?;
    let again = invoices.send_message(Message::new(&[b'x'; 600]).id("invoice-0"))?;
    check(
        again == first,
        "the retry got the deleted original's offset",
    )?;
    check(
        invoices.stats().buckets[0].end_offset == end,
        "and stored nothing",
    )?;
    store.close()?;
    Ok(())
}
