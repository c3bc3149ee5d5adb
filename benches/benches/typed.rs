//! Typed messages against the bytes API with hand-written postcard: the
//! same small struct sent one per call (`Durability::Never`, so the CPU
//! cost is what is measured, not a sync), and received (try_receive,
//! decode, ack). The typed path should cost no more than the codec: the
//! envelope is two bytes, the encode buffer is reused per thread.
//!
//! ```text
//! cargo bench -p spool-benches --bench typed
//! ```

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use serde::{Deserialize, Serialize};
use spool::{Codec, Durability, MessageType, Options, Postcard, Store, TypedStream};
use std::time::{Duration, Instant};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    id: u64,
    customer: String,
    items: Vec<u32>,
    total_cents: u64,
}

impl MessageType for Order {
    const NAME: &'static str = "bench.Order";
    const VERSION: u32 = 1;
}

fn order(i: u64) -> Order {
    Order {
        id: i,
        customer: "ada lovelace".into(),
        items: vec![3, 17, 42],
        total_cents: 12_345 + i,
    }
}

/// Messages per scratch store (then a fresh one, outside the timing).
const PER_STORE: u64 = 1 << 20;

/// A store in a temporary directory with the typed stream `bench`, kept
/// from one sample to the next (a fresh store's first append writes its
/// segment header: not what is measured).
struct Scratch {
    typed: TypedStream<Order>,
    sent: u64,
    received: u64,
    _store: Store,
    _dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("spool-bench-")
            .tempdir()
            .expect("create a temporary directory");
        let store = Store::open(dir.path(), Options::default().durability(Durability::Never))
            .expect("open store");
        let typed = store.typed_stream::<Order>("bench").expect("typed stream");
        typed.send(&order(0)).expect("warm-up send");
        Scratch {
            typed,
            sent: 1,
            received: 0,
            _store: store,
            _dir: dir,
        }
    }

    /// Room for `n` more sends, else a fresh store.
    fn room(slot: &mut Option<Scratch>, n: u64) -> &mut Scratch {
        if slot.as_ref().is_none_or(|s| s.sent + n > PER_STORE) {
            *slot = Some(Scratch::new());
        }
        slot.as_mut().expect("just made")
    }
}

/// `op` run `iters` times; the time in `op` only.
fn timed(
    slot: &mut Option<Scratch>,
    iters: u64,
    mut op: impl FnMut(&TypedStream<Order>, u64),
) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(PER_STORE / 2);
        let s = Scratch::room(slot, n);
        let start = Instant::now();
        for i in 0..n {
            op(&s.typed, i);
        }
        elapsed += start.elapsed();
        s.sent += n;
        left -= n;
    }
    elapsed
}

/// `iters` messages received, decoded and acknowledged (sent beforehand,
/// outside the timing), by the typed consumer or by the bytes API's with
/// postcard by hand.
fn timed_receive(slot: &mut Option<Scratch>, iters: u64, typed_receive: bool) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(PER_STORE / 2);
        let s = Scratch::room(slot, n);
        let values: Vec<Order> = (0..n).map(order).collect();
        for chunk in values.chunks(1024) {
            s.typed.send_batch(chunk).expect("send");
        }
        s.sent += n;
        if s.received == 0 {
            // The warm-up message, and the consumer's first journal.
            let c = s.typed.stream().consumer("c").expect("consumer");
            c.try_receive()
                .expect("receive")
                .expect("a message")
                .ack()
                .expect("ack");
            s.received = 1;
        }
        if typed_receive {
            let c = s.typed.consumer("c").expect("consumer");
            let start = Instant::now();
            for _ in 0..n {
                let d = c.try_receive().expect("receive").expect("a message");
                black_box(d.value().expect("decodes").total_cents);
                d.ack().expect("ack");
            }
            elapsed += start.elapsed();
        } else {
            let c = s.typed.stream().consumer("c").expect("consumer");
            let start = Instant::now();
            for _ in 0..n {
                let d = c.try_receive().expect("receive").expect("a message");
                // By hand: the two envelope bytes the typed send wrote
                // skipped, the rest decoded.
                let o: Order = postcard::from_bytes(&d.payload()[2..]).expect("decodes");
                black_box(o.total_cents);
                d.ack().expect("ack");
            }
            elapsed += start.elapsed();
        }
        s.received += n;
        left -= n;
    }
    elapsed
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("typed");
    g.throughput(Throughput::Elements(1));
    let mut slot = None;
    g.bench_function("send/bytes+postcard", |b| {
        b.iter_custom(|iters| {
            timed(&mut slot, iters, |t, i| {
                let bytes = postcard::to_allocvec(&order(i)).expect("encode");
                black_box(t.stream().send(&bytes).expect("send"));
            })
        })
    });
    g.bench_function("send/typed", |b| {
        b.iter_custom(|iters| {
            timed(&mut slot, iters, |t, i| {
                black_box(t.send(&order(i)).expect("send"));
            })
        })
    });
    g.bench_function("receive/bytes+postcard", |b| {
        b.iter_custom(|iters| timed_receive(&mut slot, iters, false))
    });
    g.bench_function("receive/typed", |b| {
        b.iter_custom(|iters| timed_receive(&mut slot, iters, true))
    });
    // The codec alone: the typed path's decode is `Postcard::decode` (plus
    // a two-byte envelope), the hand-written one `postcard::from_bytes`.
    let bytes = postcard::to_allocvec(&order(7)).expect("encode");
    g.bench_function("decode/postcard::from_bytes", |b| {
        b.iter(|| black_box(postcard::from_bytes::<Order>(black_box(&bytes)).expect("decode")))
    });
    g.bench_function("decode/Postcard::decode", |b| {
        b.iter(|| {
            black_box(<Postcard as Codec>::decode::<Order>(black_box(&bytes)).expect("decode"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
