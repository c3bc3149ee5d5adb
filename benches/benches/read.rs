//! Sequential read: `iter_from(0)` over 100,000 messages of 128 bytes and of
//! 4 KiB. The store is written once, before measuring.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use spool::Durability;
use spool_benches::{payload, Scratch, SIZES};
use std::time::Duration;

const MESSAGES: usize = 100_000;

fn read(c: &mut Criterion) {
    let mut g = c.benchmark_group("read_seq");
    g.sample_size(20).measurement_time(Duration::from_secs(4));
    for size in SIZES {
        let scratch = Scratch::new(Durability::Never);
        let p = payload(size);
        for chunk in 0..MESSAGES / 1000 {
            let offsets = scratch
                .stream
                .send_batch((0..1000).map(|_| &p))
                .expect("fill the store");
            assert_eq!(offsets[0], (chunk * 1000) as u64);
        }
        scratch.store.sync().expect("sync");
        let stream = &scratch.stream;
        let check = |msgs: usize, bytes: usize| {
            assert_eq!(msgs, MESSAGES);
            assert_eq!(bytes, MESSAGES * size);
        };
        let iterate = || {
            let mut msgs = 0usize;
            let mut bytes = 0usize;
            for r in stream.iter_from(0) {
                let r = r.expect("read");
                bytes += black_box(r.payload()).len();
                msgs += 1;
            }
            (msgs, bytes)
        };
        let (msgs, bytes) = iterate();
        check(msgs, bytes);

        g.throughput(Throughput::Elements(MESSAGES as u64));
        g.bench_function(BenchmarkId::new("iter_from/msgs", size), |b| {
            b.iter(|| black_box(iterate()))
        });
        g.throughput(Throughput::Bytes((MESSAGES * size) as u64));
        g.bench_function(BenchmarkId::new("iter_from/bytes", size), |b| {
            b.iter(|| black_box(iterate()))
        });
    }
    g.finish();
}

criterion_group!(benches, read);
criterion_main!(benches);
