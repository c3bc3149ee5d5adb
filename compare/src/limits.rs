//! What the machine itself allows, measured in the same run and on the same
//! disk as the workloads: how often a small append can be synced, how fast
//! buffered sequential writes go, and how fast small records can be copied
//! into a memory map.

use crate::engine::Result;
use memmap2::MmapMut;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Record size of the sync and memory-map probes.
const RECORD: usize = 128;

/// The machine's limits.
pub struct Limits {
    /// `fdatasync` calls per second, each after a 128-byte append: one
    /// sample at the start and one before each run of a durable workload
    /// (other work on the machine can make the disk's sync rate vary).
    pub sync_samples: Vec<f64>,
    /// `fdatasync` calls per second, each after an append of one W2 batch
    /// (64 records of 160 bytes, the size Spool writes for 64 × 128 B):
    /// sampled before each run of W2. Larger appends sync more slowly than
    /// 128-byte ones on most disks: this is what a plain append and sync
    /// of W2's batch size gets.
    pub batch_sync_samples: Vec<f64>,
    /// Buffered sequential writes (no sync), MB/s.
    pub write_mb_per_sec: f64,
    /// The same writes followed by one `fdatasync`, timed to its end: what
    /// the disk itself takes in, MB/s.
    pub disk_write_mb_per_sec: f64,
    /// 128-byte records copied per second into a warm memory map.
    pub copies_per_sec: f64,
    /// Why the copy probe used a heap buffer instead of a map, if it did.
    pub copy_fallback: Option<String>,
}

/// Measures the limits with files in `dir`: `syncs` appends each followed
/// by fdatasync; `bytes` written in 1 MiB chunks; a map of `bytes`.
pub fn measure(dir: &Path, syncs: u64, bytes: u64) -> Result<Limits> {
    let sync_samples = vec![sync_rate(dir, syncs, RECORD)?];
    let write_mb_per_sec = write_rate(&dir.join("write-probe"), bytes, false)?;
    let disk_write_mb_per_sec = write_rate(&dir.join("write-probe"), bytes, true)?;
    let (copies_per_sec, copy_fallback) = copy_rate(&dir.join("map-probe"), bytes)?;
    Ok(Limits {
        sync_samples,
        batch_sync_samples: Vec::new(),
        write_mb_per_sec,
        disk_write_mb_per_sec,
        copies_per_sec,
        copy_fallback,
    })
}

impl Limits {
    /// The median of the fdatasync samples, in syncs per second.
    pub fn syncs_per_sec(&self) -> f64 {
        crate::median(&mut self.sync_samples.clone())
    }

    /// The median of the batch fdatasync samples, if any were taken.
    pub fn batch_syncs_per_sec(&self) -> Option<f64> {
        (!self.batch_sync_samples.is_empty())
            .then(|| crate::median(&mut self.batch_sync_samples.clone()))
    }

    /// Takes one more fdatasync sample in `dir`, of `n` syncs.
    pub fn sample_syncs(&mut self, dir: &Path, n: u64) -> Result<f64> {
        let rate = sync_rate(dir, n, RECORD)?;
        self.sync_samples.push(rate);
        Ok(rate)
    }

    /// Takes one batch fdatasync sample in `dir`: `n` appends of `bytes`.
    pub fn sample_batch_syncs(&mut self, dir: &Path, n: u64, bytes: usize) -> Result<f64> {
        let rate = sync_rate(dir, n, bytes)?;
        self.batch_sync_samples.push(rate);
        Ok(rate)
    }
}

/// Appends `n` records of `size` bytes to a new file in `dir`, each followed
/// by `fdatasync` (`File::sync_data`); returns syncs per second.
fn sync_rate(dir: &Path, n: u64, size: usize) -> Result<f64> {
    let path = &dir.join("sync-probe");
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(path)?;
    let record = vec![0x5au8; size];
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&record)?;
        f.sync_data()?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(path)?;
    Ok(rate)
}

/// Writes `bytes` to a new file in 1 MiB chunks, then (if `sync`) calls
/// `fdatasync` once; returns MB/s over the whole.
fn write_rate(path: &Path, bytes: u64, sync: bool) -> Result<f64> {
    let mut f = File::create_new(path)?;
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 253) as u8).collect();
    let chunks = (bytes >> 20).max(1);
    let start = Instant::now();
    for _ in 0..chunks {
        f.write_all(&chunk)?;
    }
    if sync {
        f.sync_data()?;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(path)?;
    Ok((chunks << 20) as f64 / 1e6 / secs)
}

/// Copies 128-byte records, each stamped with its number, into every slot
/// of a pre-touched map of `bytes` over a new file, pass after pass for at
/// least a fifth of a second; returns records per second and, if the map
/// could not be made, why (a heap buffer is used instead).
fn copy_rate(path: &Path, bytes: u64) -> Result<(f64, Option<String>)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    file.set_len(bytes)?;
    // SAFETY: the file was just created by this process in its own fresh
    // temporary directory; nothing else maps, truncates or writes it while
    // the map lives (the map is dropped before the file is removed).
    let mapped = unsafe { MmapMut::map_mut(&file) };
    let (rate, fallback) = match mapped {
        Ok(mut map) => (copy_into(&mut map), None),
        Err(e) => {
            let mut heap = vec![0u8; bytes as usize];
            (copy_into(&mut heap), Some(e.to_string()))
        }
    };
    drop(file);
    std::fs::remove_file(path)?;
    Ok((rate, fallback))
}

/// Touches every byte of `buf`, then copies records into it; returns
/// records per second.
fn copy_into(buf: &mut [u8]) -> f64 {
    buf.fill(1);
    let mut record = [0x5au8; RECORD];
    let mut copied = 0u64;
    let start = Instant::now();
    while copied == 0 || start.elapsed() < Duration::from_millis(200) {
        for slot in buf.chunks_exact_mut(RECORD) {
            record[..8].copy_from_slice(&copied.to_le_bytes());
            slot.copy_from_slice(&record);
            copied += 1;
        }
        black_box(&mut *buf);
    }
    copied as f64 / start.elapsed().as_secs_f64()
}
