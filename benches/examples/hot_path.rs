//! The hot paths, for counting instructions under callgrind: a fixed number
//! of 128 B messages sent and received back in one of two shapes, as the
//! `compare` benchmark's W1 rows do it, with `Durability::Never`.
//!
//! ```text
//! cargo build --release -p spool-benches --example hot_path --features callgrind
//! valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     target/release/examples/hot_path batch 128000
//! callgrind_annotate --inclusive=yes cg.out | grep -E 'receive_batch|send_batch'
//! ```
//!
//! `single`: `Stream::send` each, then `Consumer::try_receive` +
//! `Delivery::ack` each. `batch`: `Stream::send_batch` of 64, then
//! `Consumer::receive_batch(64)` + `Consumer::ack_up_to`. `ids`: as
//! `single`, each message with a message id (`Message::id`, deduplicated). Instruction
//! counts do not move with the machine's load, so two builds compare
//! exactly where timings on a shared machine move by 10% or more. The
//! `callgrind` feature switches rustix to its libc backend: valgrind cannot
//! follow its raw vDSO lookup.

use spool::{Durability, Message, Options, Store};
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "batch".to_string());
    let n: usize = match args.next() {
        Some(a) => a.parse()?,
        None => 128_000,
    };
    let dir = tempfile::tempdir()?;
    let store = Store::open(dir.path(), Options::default().durability(Durability::Never))?;
    let stream = store.stream("s")?;
    let consumer = stream.consumer("c")?;
    let payload = [7u8; 128];
    let mut received = 0usize;
    match mode.as_str() {
        "single" | "ids" => {
            for i in 0..n {
                if mode == "ids" {
                    let id = format!("id-{i}");
                    stream.send_message(Message::new(&payload).id(&id))?;
                } else {
                    stream.send(&payload)?;
                }
            }
            while let Some(d) = consumer.try_receive()? {
                std::hint::black_box(d.payload());
                d.ack()?;
                received += 1;
            }
        }
        "batch" => {
            let batch = [&payload[..]; 64];
            for _ in 0..n / 64 {
                stream.send_batch(batch.iter().copied())?;
            }
            loop {
                let ds = consumer.receive_batch(64, Duration::ZERO)?;
                for d in &ds {
                    std::hint::black_box(d.payload());
                }
                let Some(last) = ds.last() else { break };
                consumer.ack_up_to(last.priority(), last.offset())?;
                received += ds.len();
            }
        }
        other => return Err(format!("mode {other:?}: single, batch or ids").into()),
    }
    let sent = if mode == "batch" { n / 64 * 64 } else { n };
    if received != sent {
        return Err(format!("received {received} of {sent}").into());
    }
    Ok(())
}
