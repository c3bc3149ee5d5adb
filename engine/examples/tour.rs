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
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The tour's result: a Spool error, or a check that failed.
type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Every line the tour prints about what happened is checked first: a check
/// that fails ends the tour with an error (and a non-zero exit status).
fn check(ok: bool, what: impl std::fmt::Display) -> Result {
    if ok {
        Ok(())
    } else {
        Err(format!("check failed: {what}").into())
    }
}

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

fn tour(path: &Path) -> Result {
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
        let last = orders.read(start - 1)?;
        check(
            last.is_some(),
            format!("offset {} of \"orders\" reads back", start - 1),
        )?;
        println!("last one {}", show(&last.unwrap()));
    }
    let run = format!("run at offset {start}");
    let off = orders.send(b"2 x espresso")?;
    check(
        off == start,
        format!("the first send got offset {start}, not {off}"),
    )?;
    println!("sent     #{off} \"2 x espresso\"");

    // 3. Headers travel with the message.
    let off = orders.send_message(
        Message::new("1 x croissant")
            .header("customer", "ada")
            .header("note", run.as_str()),
    )?;
    check(off == start + 1, "offsets follow each other")?;
    println!("sent     #{off} \"1 x croissant\" with headers customer, note");

    // 4. A batch: one write and one sync for all of them.
    let batch = ["3 x tea", "1 x cake", "4 x water"];
    let offs = orders.send_batch(batch.iter().map(|s| Message::new(*s)))?;
    check(
        offs == [start + 2, start + 3, start + 4],
        format!("the batch got offsets {offs:?}"),
    )?;
    println!("sent     #{:?} as one batch: {batch:?}", offs);

    // Read back what this run sent: the same payloads, in order, with their headers.
    println!("-- reading \"orders\" from offset {start}");
    let sent = [
        "2 x espresso",
        "1 x croissant",
        "3 x tea",
        "1 x cake",
        "4 x water",
    ];
    let mut read = 0;
    for r in orders.iter_from(start) {
        let r = r?;
        println!("read     {}", show(&r));
        check(
            r.offset() == start + read as u64
                && sent.get(read).map(|s| s.as_bytes()) == Some(r.payload()),
            format!("offset {} reads back as sent", r.offset()),
        )?;
        read += 1;
    }
    check(
        read == sent.len(),
        format!("{} messages read back, not {read}", sent.len()),
    )?;
    let croissant = orders
        .read(start + 1)?
        .ok_or("offset start + 1 is missing")?;
    check(
        croissant.header("customer") == Some(b"ada")
            && croissant.header("note") == Some(run.as_bytes()),
        "the headers read back as sent",
    )?;

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
        let messages = stats.messages();
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
fn crash_run(path: &Path) -> Result {
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
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(())) => Ok(()),
            Err(_) => Err("the writer thread panicked".into()),
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
fn queue(store: &Store) -> Result {
    println!("\n== queue: stream \"jobs\", consumer \"worker\" (max 2 deliveries, dead letters to \"jobs.dead\")");
    let jobs = store.stream("jobs")?;
    let worker = jobs.consumer_with(
        "worker",
        ConsumerConfig::default()
            .max_deliveries(2)
            .dead_letter("jobs.dead"),
    )?;
    let dead = store.stream("jobs.dead")?;
    let dead_before = dead.stats().buckets[0].end_offset;
    let first = jobs.send(b"resize photo 17")?;
    jobs.send(b"corrupt upload")?;
    jobs.send(b"email receipt")?;
    let mut seen = Vec::new();
    while let Some(d) = worker.receive(Duration::from_millis(100))? {
        let text = String::from_utf8_lossy(d.payload()).into_owned();
        let (offset, attempt) = (d.offset() - first, d.attempt());
        if text == "corrupt upload" {
            println!(
                "worker   #{} {text:?} attempt {attempt} -> nack (cannot parse)",
                d.offset()
            );
            d.nack_with(None, Some("cannot parse"))?;
        } else {
            println!("worker   #{} {text:?} attempt {attempt} -> ack", d.offset());
            d.ack()?;
        }
        seen.push((offset, attempt));
    }
    // FIFO; the nacked message comes straight back, and after its second delivery it
    // goes to the dead-letter stream instead of a third.
    check(
        seen == [(0, 1), (1, 1), (1, 2), (2, 1)],
        format!("deliveries (offset from the first, attempt) {seen:?}"),
    )?;
    check(
        worker.stats().pending() == 0,
        "the worker has nothing left to do",
    )?;
    let dead_now = dead.stats().buckets[0].end_offset;
    check(
        dead_now == dead_before + 1,
        format!("one dead letter, not {}", dead_now - dead_before),
    )?;
    let r = dead
        .read(dead_before)?
        .ok_or("the dead letter reads back")?;
    let header = |k| String::from_utf8_lossy(r.header(k).unwrap_or_default()).into_owned();
    let (attempts, reason) = (
        header(dead_letter_headers::ATTEMPTS),
        header(dead_letter_headers::REASON),
    );
    check(
        r.payload() == b"corrupt upload" && attempts == "2" && reason == "cannot parse",
        "the dead letter is the message nacked twice, with its reason",
    )?;
    println!(
        "dead     {:?} after {attempts} attempts (reason {reason:?})",
        String::from_utf8_lossy(r.payload()),
    );
    Ok(())
}

/// Publish/subscribe: every named consumer has its own durable cursor and sees every
/// message.
fn publish_subscribe(store: &Store) -> Result {
    println!("\n== publish/subscribe: stream \"prices\", subscribers \"chart\" and \"alerts\"");
    let prices = store.stream("prices")?;
    let chart = prices.consumer("chart")?;
    let alerts = prices.consumer("alerts")?;
    let sent = ["EUR 1.08", "EUR 1.09", "EUR 1.07"];
    for p in sent {
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
        check(
            seen == sent,
            format!("{} got every price: {seen:?}", sub.name()),
        )?;
        check(
            sub.stats().pending() == 0,
            "one cursor ack acknowledged them all",
        )?;
        println!("{:<8} got {seen:?}", sub.name());
    }
    Ok(())
}

/// Competing consumers: threads sharing one consumer name split the work; each message
/// is leased to exactly one of them.
fn competing_consumers(store: &Store) -> Result {
    println!(
        "\n== competing consumers: 3 threads share consumer \"thumbnailer\" of stream \"images\""
    );
    let images = store.stream("images")?;
    let batch: Vec<String> = (0..12).map(|i| format!("image-{i:02}.png")).collect();
    let sent = images.send_batch(batch.iter().map(Message::new))?;
    let threads: Vec<_> = (0..3)
        .map(|_| {
            let c = images.consumer("thumbnailer");
            std::thread::spawn(move || -> spool::Result<Vec<u64>> {
                let c = c?;
                let mut mine = Vec::new();
                while let Some(d) = c.receive(Duration::from_millis(50))? {
                    mine.push(d.offset());
                    d.ack()?;
                }
                Ok(mine)
            })
        })
        .collect();
    let mut all = Vec::new();
    for (t, h) in threads.into_iter().enumerate() {
        let mine = h.join().map_err(|_| "a worker thread panicked")??;
        println!("thread {t} handled offsets {mine:?}");
        all.extend(mine);
    }
    all.sort_unstable();
    check(
        all == sent,
        format!("every message handled exactly once: {all:?}"),
    )?;
    println!("together: each of the {} messages exactly once", sent.len());
    Ok(())
}

/// Priority queue: one FIFO log per level; a consumer serves the highest non-empty
/// level first.
fn priorities(store: &Store) -> Result {
    let tasks = match store.create_stream("tasks", StreamConfig::default().priorities(3)) {
        Ok(s) => s,
        Err(Error::StreamExists { .. }) => store.stream("tasks")?,
        Err(e) => return Err(e.into()),
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
    let mut order = Vec::new();
    while let Some(d) = c.receive(Duration::from_millis(50))? {
        let text = String::from_utf8_lossy(d.payload()).into_owned();
        println!("received priority {} {text:?}", d.priority());
        order.push((d.priority(), text));
        d.ack()?;
    }
    let expected = [
        (2, "page the on-call"),
        (1, "send invoice"),
        (0, "rebuild search index"),
        (0, "resize thumbnails"),
    ];
    check(
        order.iter().map(|(p, t)| (*p, t.as_str())).eq(expected),
        "highest level first, FIFO within a level",
    )?;
    Ok(())
}

/// Request/response: the request carries `reply-to` and `correlation-id`; the
/// responder's `reply` reaches the waiting requester, and a request not answered in
/// time fails with `Error::Timeout`.
fn request_response(store: &Store) -> Result {
    println!("\n== request/response: stream \"quotes\", replies on \"quotes.replies\"");
    let quotes = store.stream("quotes")?;
    // The responder prices each item; a catering order takes it 300 ms, and is the
    // last request it answers.
    const SLOW: &str = "catering for 200";
    let responder = {
        let c = quotes.consumer("pricing")?;
        std::thread::spawn(move || -> spool::Result<()> {
            while let Some(d) = c.receive(Duration::from_secs(5))? {
                let item = String::from_utf8_lossy(d.payload()).into_owned();
                if item == SLOW {
                    std::thread::sleep(Duration::from_millis(300));
                }
                let price = format!("{item}: EUR {}.50", item.len());
                d.reply(price.as_bytes())?;
                d.ack()?;
                if item == SLOW {
                    break;
                }
            }
            Ok(())
        })
    };
    for item in ["espresso", "croissant"] {
        let reply = quotes.request(Message::new(item), "quotes.replies", Duration::from_secs(5))?;
        let text = String::from_utf8_lossy(reply.payload()).into_owned();
        check(
            text == format!("{item}: EUR {}.50", item.len()),
            format!("the reply to {item:?} is its price, not {text:?}"),
        )?;
        println!("request  {item:?} -> reply {text:?}");
    }
    // Nobody answers this one within 50 ms: the wait ends with `Error::Timeout`.
    let asked = Instant::now();
    match quotes.request(
        Message::new(SLOW),
        "quotes.replies",
        Duration::from_millis(50),
    ) {
        Err(e @ Error::Timeout { .. }) => {
            let waited = asked.elapsed();
            check(
                waited >= Duration::from_millis(50),
                format!("the wait lasted its timeout, not {waited:?}"),
            )?;
            println!(
                "request  {SLOW:?} with a 50 ms timeout -> Error::Timeout after {waited:.0?}: {e}"
            );
        }
        Ok(r) => {
            return Err(format!(
                "check failed: {SLOW:?} was answered within 50 ms ({:?}), not timed out",
                String::from_utf8_lossy(r.payload())
            )
            .into())
        }
        Err(e) => return Err(e.into()),
    }
    responder
        .join()
        .map_err(|_| "the responder thread panicked")??;
    println!("pricing  answered {SLOW:?} 300 ms after it came: too late for its requester");
    Ok(())
}

/// Claim check: a payload above the stream's threshold is stored once as a
/// content-addressed blob file; the message carries the reference; readers get the
/// payload transparently.
fn claim_check(store: &Store) -> Result {
    let files = match store.create_stream(
        "files",
        StreamConfig::default().claim_check_threshold(64 * 1024),
    ) {
        Ok(s) => s,
        Err(Error::StreamExists { .. }) => store.stream("files")?,
        Err(e) => return Err(e.into()),
    };
    println!("\n== claim check: stream \"files\", payloads over 64 KiB go to blobs/");
    let image: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let a = files.send_message(Message::new(&image).header("name", "scan-1.tiff"))?;
    let b = files.send_message(Message::new(&image).header("name", "scan-1-copy.tiff"))?;
    let cc = files
        .read(a)?
        .ok_or("the first scan reads back")?
        .claim_check();
    let cc_b = files
        .read(b)?
        .ok_or("the second scan reads back")?
        .claim_check();
    let cc = cc.ok_or("check failed: a 3 MB payload is a claim check")?;
    check(cc_b == Some(cc), "both messages refer to the same blob")?;
    let hex = cc.hex();
    let blob = store.path().join("blobs").join(&hex[..2]).join(&hex);
    let blob_len = std::fs::metadata(&blob)?.len();
    check(
        blob_len == image.len() as u64 && cc.len == blob_len,
        format!("{} holds the payload", blob.display()),
    )?;
    println!(
        "sent     #{a} and #{b}: {} bytes each, stored once as blobs/{}/{hex}",
        image.len(),
        &hex[..2],
    );
    let c = files.consumer("archiver")?;
    let mut received = Vec::new();
    while let Some(d) = c.receive(Duration::from_millis(50))? {
        // The blob was checked against its hash when the message was read; a damaged
        // one would have been an `Error::Corrupt` instead of a delivery.
        let mut back = Vec::new();
        d.open_payload().read_to_end(&mut back)?;
        check(
            back == image,
            format!("#{} reads back the payload sent", d.offset()),
        )?;
        println!(
            "received #{} {:?}: {} bytes, the same as sent (checked against its hash)",
            d.offset(),
            String::from_utf8_lossy(d.header("name").unwrap_or_default()),
            back.len()
        );
        received.push(d.offset());
        d.ack()?;
    }
    check(
        received == [a, b],
        format!("the archiver got #{a} and #{b}"),
    )?;
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
