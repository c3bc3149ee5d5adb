//! Time to live: a message sent with `ttl` that nobody received in time is
//! never delivered. It is counted (`expired` in the consumer's stats, kept
//! across restarts) and, for a consumer with a dead-letter stream, moved
//! there with reason `expired`.
//!
//! ```text
//! cargo run --release --example ttl               # on a temporary store
//! cargo run --release --example ttl -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{dead_letter_headers, ConsumerConfig, Message, Options, Store};
use std::path::PathBuf;
use std::time::Duration;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result {
    let tmp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let config = ConsumerConfig::default().dead_letter("quotes.expired");
    {
        let store = Store::open(&dir, Options::default())?;
        check(
            store.streams().is_empty(),
            "the store is new (give a new directory)",
        )?;
        let quotes = store.stream("quotes")?;
        let trader = quotes.consumer_with("trader", config.clone())?;
        quotes.send_message(Message::new(b"EUR/USD 1.0841").ttl(Duration::from_millis(50)))?;
        quotes.send_message(Message::new(b"EUR/USD 1.0843").ttl(Duration::from_secs(60)))?;
        std::thread::sleep(Duration::from_millis(100)); // the trader was busy
        let d = trader.try_receive()?.ok_or("the quote still valid")?;
        check(
            d.payload() == b"EUR/USD 1.0843",
            "only the quote still valid",
        )?;
        d.ack()?;
        check(trader.try_receive()?.is_none(), "nothing else")?;
        check(trader.stats().expired == 1, "one expired")?;
        println!("the stale quote expired unseen; the fresh one was delivered");
        let dead = store
            .stream("quotes.expired")?
            .read(0)?
            .ok_or("a dead letter")?;
        check(
            dead.payload() == b"EUR/USD 1.0841",
            "the stale quote was moved",
        )?;
        check(
            dead.header(dead_letter_headers::REASON) == Some(&b"expired"[..]),
            "with reason expired",
        )?;
        println!("and is in quotes.expired with reason 'expired'");
        drop((trader, quotes));
        store.close()?;
    }
    let store = Store::open(&dir, Options::default())?;
    let trader = store.stream("quotes")?.consumer_with("trader", config)?;
    check(trader.stats().expired == 1, "the count survives a restart")?;
    println!("after a restart: expired = {}", trader.stats().expired);
    Ok(())
}

fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
