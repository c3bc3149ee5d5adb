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

/// Sends with deduplication ids (`Durability::Never`, 128-byte payloads):
/// each call a new id (the window's look-up and insertion under the
/// stream's dedup lock), one per call and in batches of 64, beside the same
/// sends without ids. The id is formatted in both, so the difference is
/// deduplication's cost.
fn send_ids(c: &mut Criterion) {
    let mut g = c.benchmark_group("send_ids");
    let p = payload(128);
    for with_id in [false, true] {
        let what = if with_id { "id" } else { "no_id" };
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("single/msgs", what), |b| {
            b.iter_custom(|iters| {
                let mut n = 0u64;
                timed_on_fresh_stores(Durability::Never, iters, p.len() as u64, |s| {
                    n += 1;
                    let id = format!("id-{n}");
                    let m = Message::new(&p);
                    let m = if with_id { m.id(&id) } else { m };
                    black_box(s.send_message(m).expect("send"));
                })
            })
        });
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_function(BenchmarkId::new("batch64/msgs", what), |b| {
            b.iter_custom(|iters| {
                let mut n = 0u64;
                timed_on_fresh_stores(Durability::Never, iters, (BATCH * 128) as u64, |s| {
                    let ids: Vec<String> = (0..BATCH)
                        .map(|_| {
                            n += 1;
                            format!("id-{n}")
                        })
                        .collect();
                    let batch = ids.iter().map(|id| {
                        let m = Message::new(&p);
                        if with_id {
                            m.id(id)
                        } else {
                            m
                        }
                    });
                    black_box(s.send_batch(batch).expect("send batch"));
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, send_never, send_always, send_ids);
criterion_main!(benches);
