//! Goal: a 1 GiB payload sent from a reader and read back by streaming keeps
//! anonymous memory bounded (the payload is never held in memory), and comes
//! back byte-identical.
//!
//! Method: a generator reader produces 1 GiB of pseudo-random bytes (hashing
//! them as it goes); `send_reader` stores it; the record is read and its
//! payload streamed through a 1 MiB buffer into a hash. A sampler thread
//! reads `RssAnon` from /proc/self/status every few milliseconds; the peak
//! must stay within 64 MiB of the starting value. (File-backed pages of the
//! memory maps are page cache, counted in `RssFile`, not here.) This file
//! holds one test, so no other test shares the process.

pub mod common;

use common::{temp_store, Xorshift};
use spool::{Durability, Message, Options};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

const GIB: u64 = 1 << 30;

struct Generator {
    left: u64,
    state: Xorshift,
    hasher: blake3::Hasher,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left as usize) & !7;
        for chunk in buf[..n].chunks_exact_mut(8) {
            chunk.copy_from_slice(&self.state.next_u64().to_le_bytes());
        }
        self.hasher.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}

fn rss_anon_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn one_gib_payload_streams_with_bounded_memory() {
    if !std::path::Path::new("/proc/self/status").exists() {
        eprintln!("skipped: no /proc/self/status to measure memory");
        return;
    }
    let (_dir, store) = temp_store(Options::default().durability(Durability::Always));
    let s = store.stream("big").unwrap();
    let baseline = rss_anon_kib();
    let peak = Arc::new(AtomicU64::new(baseline));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                peak.fetch_max(rss_anon_kib(), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };
    let mut gen = Generator {
        left: GIB,
        state: Xorshift(0x9e37_79b9_7f4a_7c15),
        hasher: blake3::Hasher::new(),
    };
    let t0 = std::time::Instant::now();
    let off = s
        .send_reader(&mut gen, Message::default().header("name", "disk.img"))
        .unwrap();
    let sent = t0.elapsed();
    assert_eq!(gen.left, 0);
    let want = *gen.hasher.finalize().as_bytes();
    let t1 = std::time::Instant::now();
    let rec = s.read(off).unwrap().unwrap();
    let cc = rec.claim_check().unwrap();
    assert_eq!((cc.len, cc.hash), (GIB, want));
    let mut reader = rec.open_payload();
    let mut buf = vec![0u8; 1 << 20];
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    let read = t1.elapsed();
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(total, GIB);
    assert_eq!(*hasher.finalize().as_bytes(), want, "byte-identical");
    let grew_kib = peak.load(Ordering::Relaxed).saturating_sub(baseline);
    assert!(
        grew_kib < 64 * 1024,
        "anonymous memory grew by {grew_kib} KiB for a 1 GiB payload"
    );
    eprintln!(
        "1 GiB: send_reader {:.0} MB/s, read (verify + stream) {:.0} MB/s, RssAnon peak +{grew_kib} KiB",
        GIB as f64 / 1e6 / sent.as_secs_f64(),
        GIB as f64 / 1e6 / read.as_secs_f64()
    );
}
