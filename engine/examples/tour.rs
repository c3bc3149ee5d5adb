//! A short tour of Spool on a real on-disk store: a durable log, the six messaging
//! patterns (queue, publish/subscribe, competing consumers, priority queue,
//! request/response, claim check) and crash recovery.
//!
//! ```text
//! cargo run --release --example tour                  # creates ./demo-store
//! cargo run --release --example tour                  # again: the data is still there
//! cargo run --release --example tour -- --crash       # dies halfway through a write
//! cargo run --release --example tour                  # recovery reports what it cut
//! cargo run --release --example tour -- other/dir     # another store directory
//! ```

use spool::{
    dead_letter_headers, ConsumerConfig, Durability, Error, Message, Options, Record, Store,
    StreamConfig,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut path = PathBuf::from("demo-store");
    let mut crash = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--crash" => crash = true,
            "-h" | "--help" => {
                println!("usage: tour [STORE_DIR] [--crash]   (default STORE_DIR: ./demo-store)");
                return ExitCode::SUCCESS;
            }
            a if a.starts_with('-') => {
                eprintln!("unknown option {a}; try --help");
                return ExitCode::FAILURE;
            }
            a => path = PathBuf::from(a),
        }
    }
    let result = if crash { crash_run(&path) } else { tour(&path) };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tour(path: &Path) -> spool::Result<()> {
    // 1. Open (or create) the store. It is locked while open, and recovered if the last
    //    process using it died.
    let store = Store::open(path, Options::default())?;
    println!("== store {}", store.path().display());
    print!("recovery on open: {}", store.recovery_report());

    // 2. A durable queue. With the default `Durability::Always`, a send returns once the
    //    message is on disk.
    let orders = store.stream("orders")?;
    let start = orders.stats().buckets[0].end_offset;
    if start == 0 {
        println!("\n== stream \"orders\" is new");
    } else {
        println!(
            "\n== stream \"orders\" already holds offsets 0..{start} from earlier runs; \
             new messages continue at {start}"
        );
        if let Some(r) = orders.read(start - 1)? {
            println!("last one {}", show(&r));
        }
    }
    let run = format!("run at offset {start}");
    let off = orders.send(b"2 x espresso")?;
    println!("sent     #{off} \"2 x espresso\"");

    // 3. Headers travel with the message.
    let off = orders.send_message(
        Message::new("1 x croissant")
            .header("customer", "ada")
            .header("note", run.as_str()),
    )?;
    println!("sent     #{off} \"1 x croissant\" with headers customer, note");

    // 4. A batch: one write and one sync for all of them.
    let batch = ["3 x tea", "1 x cake", "4 x water"];
    let offs = orders.send_batch(batch.iter().map(|s| Message::new(*s)))?;
    println!("sent     #{:?} as one batch: {batch:?}", offs);

    // Read back what this run sent.
    println!("-- reading \"orders\" from offset {start}");
    for r in orders.iter_from(start) {
        println!("read     {}", show(&r?));
    }

    // 5. The messaging patterns, all on the same log and consumer machinery.
    queue(&store)?;
    publish_subscribe(&store)?;
    competing_consumers(&store)?;
    priorities(&store)?;
    request_response(&store)?;
    claim_check(&store)?;

    // 6. Everything written is kept: show the totals, then close (sync and unlock).
    println!("\n== totals");
    for name in store.streams() {
        let s = store.stream(&name)?;
        let stats = s.stats();
        let messages: u64 = stats.buckets.iter().map(|b| b.end_offset).sum();
        let segments: usize = stats.buckets.iter().map(|b| b.segments).sum();
        println!("{name:<16} {messages:>6} messages in {segments} segment file(s)");
    }
    store.close()?;
    println!("\nRun the tour again: the messages above are still there and offsets go on.");
    println!("Run it with --crash to see what recovery does after a crash.");
    Ok(())
}

/// Sends with `Durability::Never` from a writer thread and aborts the process in the
/// middle of it: the next run's recovery report shows what was cut (a torn tail, when the
/// abort caught a record half-written).
fn crash_run(path: &Path) -> spool::Result<()> {
    let store = Store::open(path, Options::default().durability(Durability::Never))?;
    println!("== store {} (Durability::Never)", store.path().display());
    print!("recovery on open: {}", store.recovery_report());
    let orders = store.stream("orders")?;
    for text in ["5 x bagel", "1 x juice"] {
        let off = orders.send(text.as_bytes())?;
        println!("sent     #{off} {text:?} to \"orders\" (not synced)");
    }
    let bulk = store.stream("bulk")?;
    let start = bulk.stats().buckets[0].end_offset;
    println!("sending batches of 64 x 4 KiB to \"bulk\" from offset {start}, then aborting");
    let writer = {
        let bulk = bulk.clone();
        std::thread::spawn(move || -> spool::Result<()> {
            let body = vec![b'#'; 4096];
            loop {
                bulk.send_batch((0..64).map(|_| &body))?;
            }
        })
    };
    // Let it write about 2 MiB, then crash while it is still writing.
    while bulk.stats().buckets[0].end_offset < start + 512 && !writer.is_finished() {
        std::thread::sleep(Duration::from_millis(1));
    }
    if writer.is_finished() {
        // The writer stopped on its own: show why instead of crashing.
        return match writer.join() {
            Ok(Err(e)) => Err(e),
            _ => Ok(()),
        };
    }
    let end = bulk.stats().buckets[0].end_offset;
    println!(
        "abort!  (\"bulk\" offsets {start}..{end} were sent; more are being written)\n\
         Nothing was synced, but a process crash keeps what reached the page cache.\n\
         A record caught half-written is cut (and kept aside) on the next open.\n\
         Run the tour again to see what survived and what recovery did."
    );
    std::process::abort();
}

/// Queue: one consumer; FIFO; ack removes a message, nack gives it back, and a message
/// that fails too often goes to a dead-letter stream.
fn queue(store: &Store) -> spool::Result<()> {
    println!("\n== queue: stream \"jobs\", consumer \"worker\" (max 2 deliveries, dead letters to \"jobs.dead\")");
    let jobs = store.stream("jobs")?;
    let worker = jobs.consumer_with(
        "worker",
        ConsumerConfig::default()
            .max_deliveries(2)
            .dead_letter("jobs.dead"),
    )?;
    jobs.send(b"resize photo 17")?;
    jobs.send(b"corrupt upload")?;
    jobs.send(b"email receipt")?;
    while let Some(d) = worker.receive(Duration::from_millis(100))? {
        let text = String::from_utf8_lossy(d.payload()).into_owned();
        if text == "corrupt upload" {
            println!(
                "worker   #{} {text:?} attempt {} -> nack (cannot parse)",
                d.offset(),
                d.attempt()
            );
            d.nack_with(None, Some("cannot parse"))?;
        } else {
            println!(
                "worker   #{} {text:?} attempt {} -> ack",
                d.offset(),
                d.attempt()
            );
            d.ack()?;
        }
    }
    let dead = store.stream("jobs.dead")?;
    let first = dead.stats().buckets[0].end_offset.saturating_sub(1);
    if let Some(r) = dead.read(first)? {
        let attempts = r.header(dead_letter_headers::ATTEMPTS).unwrap_or_default();
        println!(
            "dead     {:?} after {} attempts (reason {:?})",
            String::from_utf8_lossy(r.payload()),
            String::from_utf8_lossy(attempts),
            String::from_utf8_lossy(r.header(dead_letter_headers::REASON).unwrap_or_default())
        );
    }
    Ok(())
}

/// Publish/subscribe: every named consumer has its own durable cursor and sees every
/// message.
fn publish_subscribe(store: &Store) -> spool::Result<()> {
    println!("\n== publish/subscribe: stream \"prices\", subscribers \"chart\" and \"alerts\"");
    let prices = store.stream("prices")?;
    let chart = prices.consumer("chart")?;
    let alerts = prices.consumer("alerts")?;
    for p in ["EUR 1.08", "EUR 1.09", "EUR 1.07"] {
        prices.send(p.as_bytes())?;
    }
    for sub in [&chart, &alerts] {
        let batch = sub.receive_batch(100, Duration::from_millis(100))?;
        let seen: Vec<String> = batch
            .iter()
            .map(|d| String::from_utf8_lossy(d.payload()).into_owned())
            .collect();
        if let Some(last) = batch.last() {
            // Subscribers process in order: one cursor ack covers the batch.
            sub.ack_up_to(0, last.offset())?;
        }
        println!("{:<8} got {seen:?}", sub.name());
    }
    Ok(())
}

/// Competing consumers: threads sharing one consumer name split the work; each message
/// is leased to exactly one of them.
fn competing_consumers(store: &Store) -> spool::Result<()> {
    println!(
        "\n== competing consumers: 3 threads share consumer \"thumbnailer\" of stream \"images\""
    );
    let images = store.stream("images")?;
    let batch: Vec<String> = (0..12).map(|i| format!("image-{i:02}.png")).collect();
    images.send_batch(batch.iter().map(Message::new))?;
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let c = images.consumer("thumbnailer");
            std::thread::spawn(move || -> spool::Result<Vec<u64>> {
                let c = c?;
                let mut mine = Vec::new();
                while let Some(d) = c.receive(Duration::from_millis(50))? {
                    mine.push(d.offset());
                    d.ack()?;
                }
                let _ = t;
                Ok(mine)
            })
        })
        .collect();
    for (t, h) in threads.into_iter().enumerate() {
        let mine = h
            .join()
            .map_err(|_| Error::InvalidConfig("worker thread panicked".into()))??;
        println!("thread {t} handled offsets {mine:?}");
    }
    Ok(())
}

/// Priority queue: one FIFO log per level; a consumer serves the highest non-empty
/// level first.
fn priorities(store: &Store) -> spool::Result<()> {
    let tasks = match store.create_stream("tasks", StreamConfig::default().priorities(3)) {
        Ok(s) => s,
        Err(Error::StreamExists { .. }) => store.stream("tasks")?,
        Err(e) => return Err(e),
    };
    println!("\n== priority queue: stream \"tasks\" with levels 0 (low) ..= 2 (high)");
    for (text, p) in [
        ("rebuild search index", 0),
        ("send invoice", 1),
        ("page the on-call", 2),
        ("resize thumbnails", 0),
    ] {
        let off = tasks.send_message(Message::new(text).priority(p))?;
        println!("sent     priority {p} #{off} {text:?}");
    }
    let c = tasks.consumer("scheduler")?;
    while let Some(d) = c.receive(Duration::from_millis(50))? {
        println!(
            "received priority {} {:?}",
            d.priority(),
            String::from_utf8_lossy(d.payload())
        );
        d.ack()?;
    }
    Ok(())
}

/// Request/response: the request carries `reply-to` and `correlation-id`; the
/// responder's `reply` reaches the waiting requester.
fn request_response(store: &Store) -> spool::Result<()> {
    println!("\n== request/response: stream \"quotes\", replies on \"quotes.replies\"");
    let quotes = store.stream("quotes")?;
    let responder = {
        let c = quotes.consumer("pricing")?;
        std::thread::spawn(move || -> spool::Result<()> {
            while let Some(d) = c.receive(Duration::from_millis(500))? {
                let item = String::from_utf8_lossy(d.payload()).into_owned();
                let price = format!("{item}: EUR {}.50", item.len());
                d.reply(price.as_bytes())?;
                d.ack()?;
            }
            Ok(())
        })
    };
    for item in ["espresso", "croissant"] {
        let reply = quotes.request(Message::new(item), "quotes.replies", Duration::from_secs(5))?;
        println!(
            "request  {item:?} -> reply {:?}",
            String::from_utf8_lossy(reply.payload())
        );
    }
    match quotes.request(
        Message::new("nothing"),
        "quotes.replies",
        Duration::from_millis(1),
    ) {
        Err(Error::Timeout { .. }) => {
            println!("request  \"nothing\" with a 1 ms timeout -> timed out")
        }
        Ok(r) => println!(
            "request  \"nothing\" -> {:?}",
            String::from_utf8_lossy(r.payload())
        ),
        Err(e) => return Err(e),
    }
    responder
        .join()
        .map_err(|_| Error::InvalidConfig("responder thread panicked".into()))??;
    Ok(())
}

/// Claim check: a payload above the stream's threshold is stored once as a
/// content-addressed blob file; the message carries the reference; readers get the
/// payload transparently.
fn claim_check(store: &Store) -> spool::Result<()> {
    let files = match store.create_stream(
        "files",
        StreamConfig::default().claim_check_threshold(64 * 1024),
    ) {
        Ok(s) => s,
        Err(Error::StreamExists { .. }) => store.stream("files")?,
        Err(e) => return Err(e),
    };
    println!("\n== claim check: stream \"files\", payloads over 64 KiB go to blobs/");
    let image: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let a = files.send_message(Message::new(&image).header("name", "scan-1.tiff"))?;
    let b = files.send_message(Message::new(&image).header("name", "scan-1-copy.tiff"))?;
    let r = files.read(a)?.expect("just sent");
    let cc = r.claim_check().expect("a claim check");
    println!(
        "sent     #{a} and #{b}: {} bytes each, stored once as blobs/{}/{}",
        image.len(),
        &cc.hex()[..2],
        cc.hex()
    );
    let c = files.consumer("archiver")?;
    while let Some(d) = c.receive(Duration::from_millis(50))? {
        let mut copied = 0u64;
        let mut reader = d.open_payload();
        std::io::copy(&mut reader, &mut std::io::sink())
            .map(|n| copied = n)
            .ok();
        println!(
            "received #{} {:?}: {} bytes, verified against its hash",
            d.offset(),
            String::from_utf8_lossy(d.header("name").unwrap_or_default()),
            copied
        );
        d.ack()?;
    }
    Ok(())
}

/// One line about a record: offset, headers, payload.
fn show(r: &Record) -> String {
    let mut s = format!("#{} {:?}", r.offset(), String::from_utf8_lossy(r.payload()));
    let headers: Vec<String> = r
        .headers()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
        .collect();
    if !headers.is_empty() {
        s.push_str(&format!("  [{}]", headers.join(", ")));
    }
    s
}
