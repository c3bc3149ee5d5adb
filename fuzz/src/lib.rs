//! Pieces shared by the fuzz targets: a byte reader for the targets' input
//! formats, golden stores built once per process and copied into a fresh
//! directory for every input, and the oracle that checks what a reopened
//! store returns.
//!
//! The oracle rests on one fact: a record's CRC is seeded with its segment's
//! random id and covers its offset, so fuzz bytes cannot make a valid record
//! except by copying a real one. Whatever a damaged store returns must
//! therefore be, at each offset, the message originally sent at that offset
//! (or a record a target forged on purpose with the real segment id, which it
//! registers as an alternative).

#![forbid(unsafe_code)]

use spool::{Durability, Message, Options, Store};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Segment size of every fuzzed store: the smallest allowed, so files stay small.
pub const SEGMENT_BYTES: u64 = 64 * 1024;

/// Options every fuzzed store is opened with.
pub fn options() -> Options {
    Options::default()
        .durability(Durability::Never)
        .segment_bytes_max(SEGMENT_BYTES)
}

/// A fresh scratch directory, on tmpfs when there is one: opening a store
/// syncs files, and syncs on tmpfs cost nothing.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("spool-fuzz-")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::Builder::new()
        .prefix("spool-fuzz-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Reads the fuzz input as a sequence of small fields; past the end every
/// field reads as zero, so any input is a valid program.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Reads `data` from its start.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { rest: data }
    }

    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.rest.len());
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        head
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.rest.len())
    }

    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        let src = self.bytes(N);
        b[..src.len()].copy_from_slice(src);
        b
    }

    /// A `u8`.
    pub fn u8(&mut self) -> u8 {
        self.le::<1>()[0]
    }

    /// A little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.le())
    }

    /// A little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }

    /// A little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.le())
    }

    /// A byte string preceded by its `u16` length.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.bytes(n)
    }
}

/// A message as sent, for the oracle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Offset it was sent at.
    pub offset: u64,
    /// Its payload.
    pub payload: Vec<u8>,
    /// Its headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The `i`-th message of a golden store: assorted sizes (empty, unaligned,
/// a few KiB) and some with headers.
pub fn golden_message(i: u64, big: bool) -> Expected {
    let len = match i % 5 {
        0 => 0,
        1 => 1 + (i as usize % 7),
        2 => 100 + i as usize,
        3 if big => 6000 + i as usize,
        3 => 700,
        _ => 33,
    };
    let payload = (0..len)
        .map(|k| (k as u64 ^ i.wrapping_mul(0x9e37)) as u8)
        .collect();
    let headers = if i % 3 == 1 {
        vec![
            ("reply-to".to_string(), b"replies".to_vec()),
            (format!("k{i}"), vec![i as u8; (i % 4) as usize]),
        ]
    } else {
        Vec::new()
    };
    Expected {
        offset: i,
        payload,
        headers,
    }
}

/// A store captured as file contents, to be written out again for each input.
#[derive(Debug)]
pub struct Golden {
    /// Directories, relative to the store root, parents first.
    pub dirs: Vec<PathBuf>,
    /// Files, relative to the store root, with their contents.
    pub files: Vec<(PathBuf, Vec<u8>)>,
    /// What was sent to stream `s`, priority 0.
    pub messages: Vec<Expected>,
}

/// Name of the stream of the golden stores.
pub const STREAM: &str = "s";

impl Golden {
    /// Builds a store with stream [`STREAM`] holding `n` golden messages, closes
    /// it cleanly and captures its files.
    pub fn build(n: u64, big: bool) -> Golden {
        let dir = scratch_dir();
        let messages: Vec<Expected> = (0..n).map(|i| golden_message(i, big)).collect();
        {
            let store = Store::open(dir.path(), options()).expect("open a new store");
            let s = store.stream(STREAM).expect("create stream");
            for m in &messages {
                let mut msg = Message::new(&m.payload);
                for (k, v) in &m.headers {
                    msg = msg.header(k, v);
                }
                let off = s.send_message(msg).expect("send");
                assert_eq!(off, m.offset);
            }
            store.close().expect("close");
        }
        let mut g = Golden {
            dirs: Vec::new(),
            files: Vec::new(),
            messages,
        };
        capture(dir.path(), Path::new(""), &mut g);
        g
    }

    /// Writes the captured store into `root` (an empty directory).
    pub fn materialize(&self, root: &Path) {
        for d in &self.dirs {
            std::fs::create_dir_all(root.join(d)).expect("create directory");
        }
        for (p, bytes) in &self.files {
            std::fs::write(root.join(p), bytes).expect("write file");
        }
    }

    /// The captured contents of `rel`.
    pub fn file(&self, rel: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == Path::new(rel))
            .map(|(_, b)| b.as_slice())
    }

    /// Paths of files of bucket 0 of [`STREAM`] with extension `ext`, sorted.
    pub fn bucket_files(&self, ext: &str) -> Vec<PathBuf> {
        let dir = Path::new("streams").join(STREAM).join("p0");
        let mut v: Vec<PathBuf> = self
            .files
            .iter()
            .map(|(p, _)| p.clone())
            .filter(|p| p.parent() == Some(dir.as_path()))
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort();
        v
    }
}

fn capture(root: &Path, rel: &Path, g: &mut Golden) {
    let mut entries: Vec<_> = std::fs::read_dir(root.join(rel))
        .expect("list golden store")
        .map(|e| e.expect("list golden store"))
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let rel = rel.join(&name);
        let ty = e.file_type().expect("file type");
        if ty.is_dir() {
            g.dirs.push(rel.clone());
            capture(root, &rel, g);
        } else if ty.is_file() && name != "LOCK" {
            let bytes = std::fs::read(root.join(&rel)).expect("read golden file");
            g.files.push((rel, bytes));
        }
    }
}

/// The golden store of `segment_recovery`: one segment, a few messages.
pub fn small_golden() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| Golden::build(12, false))
}

/// The golden store of `store_open`: several sealed segments with indexes.
pub fn sealed_golden() -> &'static Golden {
    static G: OnceLock<Golden> = OnceLock::new();
    G.get_or_init(|| {
        let g = Golden::build(140, true);
        assert!(
            g.bucket_files("idx").len() >= 2,
            "the golden store should have sealed segments"
        );
        g
    })
}

/// Reads priority 0 of [`STREAM`] from offset 0 and checks every record
/// against `expected` (plus `alternatives`: records forged on purpose).
/// Returns the offset after the last record read and the error that stopped the read,
/// if any. Panics (a finding) if a record is not what was sent.
pub fn read_and_check(
    store: &Store,
    expected: &[Expected],
    alternatives: &[Expected],
) -> (u64, Option<spool::Error>) {
    if !store.streams().iter().any(|s| s == STREAM) {
        return (0, None);
    }
    let stream = match store.stream(STREAM) {
        Ok(s) => s,
        Err(e) => return (0, Some(e)),
    };
    // A stream config with valid checksums may carry retention limits (a
    // fuzzed max_age or max_bytes): segments deleted by them are not a loss,
    // so reading starts at the first retained offset.
    let first = stream
        .stats()
        .buckets
        .first()
        .map(|b| b.first_offset)
        .unwrap_or(0);
    let mut next = first;
    for item in stream.iter_from(first) {
        let r = match item {
            Ok(r) => r,
            Err(e) => {
                // Errors are typed; rendering them must not panic either.
                let _ = e.to_string();
                return (next, Some(e));
            }
        };
        assert_eq!(
            r.offset(),
            next,
            "offsets must be dense from the first retained"
        );
        let _ = r.timestamp();
        let headers: Vec<(String, Vec<u8>)> = r
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        let matches = |e: &&Expected| {
            e.offset == next && e.payload.as_slice() == r.payload() && e.headers == headers
        };
        assert!(
            expected.iter().any(|e| matches(&e)) || alternatives.iter().any(|e| matches(&e)),
            "offset {next}: a record that was never sent: {} payload bytes, headers {headers:?}",
            r.payload().len()
        );
        next += 1;
        assert!(
            next <= expected.len() as u64 + alternatives.len() as u64 + 1,
            "more records than were ever written"
        );
    }
    (next, None)
}
