//! Send throughput: 128-byte and 4 KiB payloads, one message per call and
//! batches of 64, with `Durability::Never` (no sync) and `Durability::Always`
//! (every call returns after its bytes are on disk). Each measurement runs
//! on fresh stores; creating them is not measured.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spool::{Durability, Message};
use spool_benches::{payload, timed_on_fresh_stores, BATCH, SIZES};
use std::time::Duration;

fn send(c: &mut Criterion, name: &str, durability: Durability, slow: bool) {
    let mut g = c.benchmark_group(name);
    if slow {
        // Every call is an fsync: few, long samples.
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
    }
    for size in SIZES {
        let p = payload(size);

        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("single/bytes", size), &p, |b, p| {
            b.iter_custom(|iters| {
                timed_on_fresh_stores(durability, iters, p.len() as u64, |s| {
                    black_box(s.send(p).expect("send"));
                })
            })
        });

        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("single/msgs", size), &p, |b, p| {
            b.iter_custom(|iters| {
                timed_on_fresh_stores(durability, iters, p.len() as u64, |s| {
                    black_box(s.send(p).expect("send"));
                })
            })
        });

        let batch: Vec<Message<'_>> = (0..BATCH).map(|_| Message::new(&p)).collect();
        let batch_bytes = (BATCH * size) as u64;
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::new("batch64/msgs", size), &batch, |b, m| {
            b.iter_custom(|iters| {
                timed_on_fresh_stores(durability, iters, batch_bytes, |s| {
                    black_box(s.send_batch(m.iter().cloned()).expect("send batch"));
                })
            })
        });
        g.throughput(Throughput::Bytes(batch_bytes));
        g.bench_with_input(BenchmarkId::new("batch64/bytes", size), &batch, |b, m| {
            b.iter_custom(|iters| {
                timed_on_fresh_stores(durability, iters, batch_bytes, |s| {
                    black_box(s.send_batch(m.iter().cloned()).expect("send batch"));
                })
            })
        });
    }
    g.finish();
}

fn send_never(c: &mut Criterion) {
    send(c, "send_never", Durability::Never, false);
}

fn send_always(c: &mut Criterion) {
    send(c, "send_always", Durability::Always, true);
}

criterion_group!(benches, send_never, send_always);
criterion_main!(benches);
