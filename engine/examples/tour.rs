//! A short tour of Spool: a durable queue, headers, batches, priorities and crash recovery.
//!
//! ```text
//! cargo run --release --example tour                  # creates ./demo-store
//! cargo run --release --example tour                  # again: the data is still there
//! cargo run --release --example tour -- --crash       # dies halfway through a write
//! cargo run --release --example tour                  # recovery reports what it cut
//! cargo run --release --example tour -- other/dir     # another store directory
//! ```

use spool::{Durability, Error, Message, Options, Record, Store, StreamConfig};
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

    // 5. Priorities: a stream with 3 levels keeps one FIFO log per level; a consumer
    //    serves the highest non-empty level first.
    let tasks = match store.create_stream("tasks", StreamConfig::default().priorities(3)) {
        Ok(s) => s,
        Err(Error::StreamExists { .. }) => store.stream("tasks")?,
        Err(e) => return Err(e),
    };
    println!("\n== stream \"tasks\" with priorities 0 (low) ..= 2 (high)");
    let before: Vec<u64> = tasks.stats().buckets.iter().map(|b| b.end_offset).collect();
    for (text, p) in [
        ("rebuild search index", 0),
        ("send invoice", 1),
        ("page the on-call", 2),
        ("resize thumbnails", 0),
    ] {
        let off = tasks.send_message(Message::new(text).priority(p))?;
        println!("sent     priority {p} #{off} {text:?}");
    }
    println!("-- reading \"tasks\", highest priority first");
    for p in (0..3u8).rev() {
        for r in tasks.iter_priority(p, before[p as usize])? {
            println!("read     priority {p} {}", show(&r?));
        }
    }

    // 6. Everything written is kept: show the totals, then close (sync and unlock).
    println!("\n== totals");
    for name in store.streams() {
        let s = store.stream(&name)?;
        let stats = s.stats();
        let messages: u64 = stats.buckets.iter().map(|b| b.end_offset).sum();
        let segments: usize = stats.buckets.iter().map(|b| b.segments).sum();
        println!("{name:<8} {messages:>6} messages in {segments} segment file(s)");
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
