//! The messaging patterns: receive + ack with one consumer, with 4 competing
//! threads and with 8 fan-out subscribers (128-byte messages, no fsync);
//! request/response round trips (no fsync, and durable); claim-check sends
//! of 16 MiB payloads.
//!
//! Messages are sent before the timer starts; only receiving and acking is
//! measured.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spool::{Durability, Message, Options, Store, StreamConfig};
use std::time::{Duration, Instant};

const N: u64 = 100_000;

fn store(durability: Durability) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path(), Options::default().durability(durability)).expect("open");
    (dir, store)
}

fn filled(n: u64) -> (tempfile::TempDir, Store, spool::Stream) {
    let (dir, store) = store(Durability::Never);
    let s = store.stream("s").expect("stream");
    let p = [7u8; 128];
    let batch: Vec<&[u8]> = (0..1000).map(|_| &p[..]).collect();
    for _ in 0..n / 1000 {
        s.send_batch(batch.iter().copied()).expect("send");
    }
    (dir, store, s)
}

fn receive_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("receive_ack");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(N));
    g.bench_function(BenchmarkId::new("one_consumer", N), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_d, _st, s) = filled(N);
                let c = s.consumer("c").expect("consumer");
                let t = Instant::now();
                while let Some(d) = c.try_receive().expect("receive") {
                    d.ack().expect("ack");
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.bench_function(BenchmarkId::new("four_competing_threads", N), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_d, _st, s) = filled(N);
                let c = s.consumer("c").expect("consumer");
                let t = Instant::now();
                let hs: Vec<_> = (0..4)
                    .map(|_| {
                        let c = c.clone();
                        std::thread::spawn(move || {
                            while let Some(d) = c.try_receive().expect("receive") {
                                d.ack().expect("ack");
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().expect("thread");
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.throughput(Throughput::Elements(8 * N));
    g.bench_function(BenchmarkId::new("eight_subscribers_batched", N), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (_d, _st, s) = filled(N);
                let subs: Vec<_> = (0..8)
                    .map(|i| s.consumer(&format!("sub{i}")).expect("consumer"))
                    .collect();
                let t = Instant::now();
                let hs: Vec<_> = subs
                    .into_iter()
                    .map(|c| {
                        std::thread::spawn(move || loop {
                            let batch = c.receive_batch(256, Duration::ZERO).expect("receive");
                            let Some(last) = batch.last().map(|d| d.offset()) else {
                                return;
                            };
                            c.ack_up_to(0, last).expect("ack");
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().expect("thread");
                }
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
}

fn request_response(c: &mut Criterion) {
    let mut g = c.benchmark_group("request_response");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for (name, durability) in [("never", Durability::Never), ("always", Durability::Always)] {
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::new("round_trip", name), |b| {
            let (_d, store) = store(durability);
            let requests = store.stream("requests").expect("stream");
            let c = requests.consumer("responder").expect("consumer");
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let responder = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        if let Some(d) = c.receive(Duration::from_millis(20)).expect("receive") {
                            d.reply(d.payload()).expect("reply");
                            d.ack().expect("ack");
                        }
                    }
                })
            };
            b.iter(|| {
                requests
                    .request(Message::new(b"ping"), "replies", Duration::from_secs(10))
                    .expect("request")
            });
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            responder.join().expect("responder");
        });
    }
    g.finish();
}

fn claim_check(c: &mut Criterion) {
    let mut g = c.benchmark_group("claim_check");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    const SIZE: usize = 16 << 20;
    let payload: Vec<u8> = (0..SIZE as u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    g.throughput(Throughput::Bytes(SIZE as u64));
    g.bench_function("send_16MiB_durable", |b| {
        let (_d, store) = store(Durability::Always);
        let s = store
            .create_stream("files", StreamConfig::default())
            .expect("stream");
        let mut i = 0u32;
        b.iter(|| {
            // A different payload each time: no deduplication.
            let mut p = payload.clone();
            p[..4].copy_from_slice(&i.to_le_bytes());
            i += 1;
            s.send_reader(&p[..], Message::default()).expect("send")
        })
    });
    g.finish();
}

criterion_group!(benches, receive_ack, request_response, claim_check);
criterion_main!(benches);
