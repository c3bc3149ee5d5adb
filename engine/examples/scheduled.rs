//! Scheduled delivery: a reminder sent with `deliver_after` is not delivered
//! before its time, also after a restart, and a receive blocked meanwhile
//! wakes when it becomes due (no send wakes it). Once due it goes before
//! messages sent after it became due.
//!
//! ```text
//! cargo run --release --example scheduled               # on a temporary store
//! cargo run --release --example scheduled -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Message, Options, Store};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);

    let due;
    {
        let store = Store::open(&dir, Options::default())?;
        check(
            store.streams().is_empty(),
            "the store is new (give a new directory)",
        )?;
        let reminders = store.stream("reminders")?;
        let worker = reminders.consumer("worker")?;
        reminders
            .send_message(Message::new(b"call back").deliver_after(Duration::from_millis(400)))?;
        due = reminders
            .read(0)?
            .and_then(|r| r.deliver_at())
            .ok_or("a deliver-at")?;
        check(
            worker.try_receive()?.is_none(),
            "not delivered before its time",
        )?;
        check(
            worker.stats().buckets[0].scheduled == 1,
            "the consumer counts it as scheduled",
        )?;
        println!("sent 'call back' for in 400 ms; not delivered yet");
        drop((worker, reminders));
        store.close()?;
    }
    // A restart changes nothing: the time is in the message itself.
    let store = Store::open(&dir, Options::default())?;
    let reminders = store.stream("reminders")?;
    let worker = reminders.consumer("worker")?;
    check(
        worker.try_receive()?.is_none(),
        "still not delivered after a restart",
    )?;
    println!("after a restart: still waiting");

    // A receive blocked now is woken when the reminder is due.
    let d = worker
        .receive(Duration::from_secs(30))?
        .ok_or("woken when due")?;
    check(SystemTime::now() >= due, "delivered at or after its time")?;
    check(d.payload() == b"call back", "the reminder")?;
    println!("received 'call back' once due (attempt {})", d.attempt());
    d.ack()?;

    // A due message goes before newer ones of its level.
    reminders.send_message(Message::new(b"soon").deliver_after(Duration::from_millis(100)))?;
    std::thread::sleep(Duration::from_millis(150));
    reminders.send(b"now")?;
    let order: Vec<Vec<u8>> = worker
        .receive_batch(10, Duration::from_secs(1))?
        .iter()
        .map(|d| d.payload().to_vec())
        .collect();
    check(
        order == [b"soon".to_vec(), b"now".to_vec()],
        "the due one first",
    )?;
    println!("due 'soon' delivered before the newer 'now'");
    Ok(())
}

fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
