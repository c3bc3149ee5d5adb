//! Benchmarks of Spool; see `benches/`. This library holds what the bench
//! files share: payloads, options, and scratch stores whose creation stays
//! outside the measured time.

#![forbid(unsafe_code)]

use spool::{Durability, Options, Store, Stream};
use std::time::{Duration, Instant};

/// Payload sizes the send benches use.
pub const SIZES: [usize; 2] = [128, 4096];

/// Messages per `send_batch` call in the batched benches.
pub const BATCH: usize = 64;

/// Most payload bytes written to one scratch store before the bench moves to
/// a fresh one, so that long runs do not fill the disk.
pub const BYTES_PER_STORE: u64 = 256 << 20;

/// A payload of `size` bytes (not all zero, not compressible to nothing).
pub fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

/// Store options for a bench: the default segment size, the given durability.
pub fn options(durability: Durability) -> Options {
    Options::default().durability(durability)
}

/// A store in a fresh temporary directory with one stream, `bench`.
pub struct Scratch {
    /// The stream.
    pub stream: Stream,
    /// The store (dropped before the directory).
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates the store and the stream.
    pub fn new(durability: Durability) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("spool-bench-")
            .tempdir()
            .expect("create a temporary directory");
        let store = Store::open(dir.path(), options(durability)).expect("open store");
        let stream = store.stream("bench").expect("create stream");
        Scratch {
            stream,
            store,
            _dir: dir,
        }
    }
}

/// Runs `op` `iters` times and returns the time spent in `op` only: each
/// call writes `bytes_per_op` payload bytes, and a fresh scratch store is
/// created (outside the measured time) whenever the current one has taken
/// [`BYTES_PER_STORE`].
pub fn timed_on_fresh_stores(
    durability: Durability,
    iters: u64,
    bytes_per_op: u64,
    mut op: impl FnMut(&Stream),
) -> Duration {
    let per_store = (BYTES_PER_STORE / bytes_per_op.max(1)).max(1);
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(per_store);
        let scratch = Scratch::new(durability);
        let start = Instant::now();
        for _ in 0..n {
            op(&scratch.stream);
        }
        elapsed += start.elapsed();
        drop(scratch);
        left -= n;
    }
    elapsed
}
