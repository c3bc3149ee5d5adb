//! Message groups: the workers of one consumer hold at most one message of
//! a group at a time, and a group's messages go in order; different groups
//! go in parallel. Here orders of two customers are handled by a pool of
//! worker threads: each customer's orders are handled one after the
//! other, in the order they were sent, while both customers are served at
//! once.
//!
//! ```text
//! cargo run --release --example groups               # on a temporary store
//! cargo run --release --example groups -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{Message, Options, Store};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

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
    let orders = store.stream("orders")?;
    let names = ["alice", "bob"];
    for i in 0..20 {
        let customer = names[i % 2];
        let body = format!("{customer} order {}", i / 2);
        orders.send_message(Message::new(body.as_str()).group(customer))?;
    }
    // One batch holds one message per group.
    let workers = orders.consumer("workers")?;
    let batch = workers.receive_batch(10, Duration::ZERO)?;
    check(batch.len() == 2, "one per customer in a batch")?;
    println!(
        "a batch of 10 gave {} messages: one per customer",
        batch.len()
    );
    for d in batch {
        d.nack()?; // back, and still first of their groups
    }

    // Four worker threads; each customer is only ever handled by one at a time.
    let busy: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut threads = Vec::new();
    for _ in 0..4 {
        let (workers, busy, handled) = (workers.clone(), busy.clone(), handled.clone());
        threads.push(std::thread::spawn(
            move || -> std::result::Result<(), String> {
                while let Some(d) = workers
                    .receive(Duration::from_millis(300))
                    .map_err(|e| e.to_string())?
                {
                    let body = String::from_utf8_lossy(d.payload()).into_owned();
                    let customer = body.split(' ').next().unwrap_or_default().to_string();
                    {
                        let mut b = busy.lock().map_err(|e| e.to_string())?;
                        if b.insert(customer.clone(), true) == Some(true) {
                            return Err(format!("{customer} handled twice at once"));
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                    busy.lock()
                        .map_err(|e| e.to_string())?
                        .insert(customer, false);
                    handled.lock().map_err(|e| e.to_string())?.push(body);
                    d.ack().map_err(|e| e.to_string())?;
                }
                Ok(())
            },
        ));
    }
    for t in threads {
        t.join().map_err(|_| "a worker panicked")??;
    }
    let handled = handled.lock().map_err(|e| e.to_string())?.clone();
    check(handled.len() == 20, "every order handled once")?;
    for customer in names {
        let mine: Vec<&String> = handled.iter().filter(|b| b.starts_with(customer)).collect();
        let want: Vec<String> = (0..10).map(|i| format!("{customer} order {i}")).collect();
        check(
            mine.iter()
                .map(|s| s.as_str())
                .eq(want.iter().map(|s| s.as_str())),
            "each customer's orders in the order sent",
        )?;
    }
    println!("4 workers handled 20 orders: each customer's in order, never two at once");
    Ok(())
}

fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
