//! Request/response: a request is a message with `reply-to` and
//! `correlation-id` headers; a responder answers it with `Delivery::reply`,
//! and the requester waiting on the reply stream gets exactly its own reply.
//! Replies are durable messages too: a request sent before a restart can be
//! collected after it. A request nobody answers in time fails with
//! `Error::Timeout`.
//!
//! ```text
//! cargo run --release --example request_response               # on a temporary store
//! cargo run --release --example request_response -- my-store   # on ./my-store (a new directory)
//! ```
//!
//! Each step prints what it shows and checks it; a check that fails ends the
//! program with an error (exit status 1).

use spool::{request_headers, Error, Message, Options, Store};
use std::path::PathBuf;
use std::time::{Duration, Instant};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Requests the responder answers before it stops.
const REQUESTS: usize = 5;

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
    let quotes = store.stream("quotes")?;

    // The responder: consumer "pricing" of "quotes". Its reply goes to the stream the
    // request names, carrying the request's correlation id.
    let pricing = quotes.consumer("pricing")?;
    let responder = std::thread::spawn(move || -> spool::Result<usize> {
        let mut answered = 0;
        while answered < REQUESTS {
            let Some(d) = pricing.receive(Duration::from_secs(10))? else {
                break;
            };
            let item = String::from_utf8_lossy(d.payload()).into_owned();
            let reply_to = d.header(request_headers::REPLY_TO).unwrap_or_default();
            let id = d
                .header(request_headers::CORRELATION_ID)
                .unwrap_or_default();
            println!(
                "  pricing: {item:?} (reply-to {}, correlation-id {}..)",
                String::from_utf8_lossy(reply_to),
                String::from_utf8_lossy(&id[..8.min(id.len())]),
            );
            let price = format!("{item}: EUR {}.50", item.len());
            d.reply_message(Message::new(&price).header("currency", "EUR"))?;
            d.ack()?;
            answered += 1;
        }
        Ok(answered)
    });

    // 1. A request waits for its reply.
    let reply = quotes.request(
        Message::new("espresso"),
        "quotes.replies",
        Duration::from_secs(5),
    )?;
    check(
        reply.payload() == b"espresso: EUR 8.50",
        "the reply is the price",
    )?;
    check(
        reply.header("currency") == Some(b"EUR"),
        "the reply's own headers",
    )?;
    println!("request \"espresso\" -> {:?}", text(reply.payload()));

    // 2. Three requesters at once on the same reply stream: the correlation id routes
    //    each reply to the requester that asked.
    std::thread::scope(|s| -> Result {
        let asks: Vec<_> = ["tea", "croissant", "sparkling water"]
            .into_iter()
            .map(|item| {
                let quotes = &quotes;
                s.spawn(move || {
                    let r = quotes.request(
                        Message::new(item),
                        "quotes.replies",
                        Duration::from_secs(5),
                    );
                    (item, r.map(|r| text(r.payload())))
                })
            })
            .collect();
        for a in asks {
            let (item, reply) = a.join().map_err(|_| "a requester panicked")?;
            let reply = reply?;
            check(
                reply == format!("{item}: EUR {}.50", item.len()),
                "each gets its own reply",
            )?;
            println!("request {item:?} -> {reply:?}");
        }
        Ok(())
    })?;

    // 3. Send now, collect later: `send_request` returns the correlation id. The
    //    reply is a durable message, so the store can even be closed in between.
    let id = quotes.send_request(Message::new("bagel"), "quotes.replies")?;
    println!("sent request \"bagel\", correlation id {id}");
    let answered = responder.join().map_err(|_| "the responder panicked")??;
    check(answered == REQUESTS, "the responder answered every request")?;
    drop(quotes);
    store.close()?;
    let store = Store::open(&dir, Options::default())?;
    let reply = store.wait_reply("quotes.replies", &id, Duration::from_secs(5))?;
    check(
        reply.payload() == b"bagel: EUR 5.50",
        "the reply survives a restart",
    )?;
    println!(
        "after a restart, wait_reply({}..) -> {:?}",
        &id[..8],
        text(reply.payload())
    );

    // 4. Nobody answers now (the responder stopped): the request times out.
    let quotes = store.stream("quotes")?;
    let asked = Instant::now();
    match quotes.request(
        Message::new("cake"),
        "quotes.replies",
        Duration::from_millis(100),
    ) {
        Err(Error::Timeout { correlation_id }) => {
            let waited = asked.elapsed();
            check(
                waited >= Duration::from_millis(100),
                "it waited for the timeout",
            )?;
            println!(
                "request \"cake\" with nobody answering -> Error::Timeout after {waited:.0?} \
                 (correlation id {}..)",
                &correlation_id[..8]
            );
        }
        Ok(r) => {
            return Err(format!("check failed: unexpected reply {:?}", text(r.payload())).into())
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// Ends the program with an error unless `ok`.
fn check(ok: bool, what: &str) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}
