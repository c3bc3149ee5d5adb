//! Claim-check blobs (DESIGN.md 3.6): every reference held by a record
//! against its file, and the blob files no record refers to. Names follow
//! [`crate::layout`]: a file that is not `blobs/<2 hex>/<64 hex>` in lower
//! case is not a blob, as the engine's open sees it (never reported, never
//! removed).

use super::read::{count_read, list_dir};
use super::{BlobRef, Inspector, Problem, StoreInfo};
use crate::io::{EntryKind, OpenMode};
use crate::layout;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// Directory of claim-check blobs in a store.
pub const BLOBS_DIR: &str = layout::BLOBS_DIR;

/// Directory of blobs being written, under [`BLOBS_DIR`].
pub const BLOBS_TMP_DIR: &str = layout::BLOBS_TMP_DIR;

/// Bytes hashed at a time when a blob is checked.
const HASH_CHUNK_BYTES: usize = 1 << 20;

/// A hash as 64 lower-case hex digits (a blob's file name).
pub fn hash_hex(h: &[u8; 32]) -> String {
    layout::hash_hex(h)
}

/// Parses 64 lower-case hex digits (a blob's file name) into a hash.
pub fn parse_hash_hex(name: &str) -> Option<[u8; 32]> {
    layout::parse_hash_hex(name)
}

/// Path of the blob with hash `h` in the store at `store`.
pub fn blob_path(store: &Path, h: &[u8; 32]) -> PathBuf {
    layout::blob_path(&store.join(BLOBS_DIR), h)
}

/// What is wrong with a blob file, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobStatus {
    /// Present, a regular file, of the right length and hash.
    Valid,
    /// No such file.
    Missing,
    /// Something else than a regular file (a symlink, a directory, a FIFO).
    NotAFile,
    /// Its length differs from the reference's.
    WrongLength(u64),
    /// Its BLAKE3 hash differs from its name.
    WrongHash([u8; 32]),
    /// It could not be read.
    Unreadable(String),
}

impl std::fmt::Display for BlobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobStatus::Valid => write!(f, "valid"),
            BlobStatus::Missing => write!(f, "blob file missing"),
            BlobStatus::NotAFile => write!(f, "blob is not a regular file"),
            BlobStatus::WrongLength(n) => write!(f, "blob holds {n} bytes"),
            BlobStatus::WrongHash(h) => {
                write!(f, "blob content has BLAKE3 hash {}", hash_hex(h))
            }
            BlobStatus::Unreadable(e) => write!(f, "cannot read blob: {e}"),
        }
    }
}

impl Inspector<'_> {
    /// Checks the blob file at `path` (see [`super::check_blob_file`]).
    pub fn check_blob_file(&self, path: &Path, hash: &[u8; 32], length: u64) -> BlobStatus {
        match self.vfs.kind(path) {
            Ok(None) => return BlobStatus::Missing,
            Ok(Some(EntryKind::File)) => {}
            Ok(Some(_)) => return BlobStatus::NotAFile,
            Err(e) => return BlobStatus::Unreadable(e.to_string()),
        }
        let file = match self.vfs.open(path, OpenMode::ReadOnly) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return BlobStatus::Missing,
            Err(e) => return BlobStatus::Unreadable(e.to_string()),
        };
        match file.len() {
            Ok(n) if n != length => return BlobStatus::WrongLength(n),
            Ok(_) => {}
            Err(e) => return BlobStatus::Unreadable(e.to_string()),
        }
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; HASH_CHUNK_BYTES];
        let mut total = 0u64;
        loop {
            let n = match file.read_at(&mut buf, total) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return BlobStatus::Unreadable(e.to_string()),
            };
            total += n as u64;
            count_read(n);
            if total > length {
                return BlobStatus::WrongLength(total);
            }
            hasher.update(&buf[..n]);
        }
        if total != length {
            return BlobStatus::WrongLength(total);
        }
        let got: [u8; 32] = *hasher.finalize().as_bytes();
        if &got != hash {
            return BlobStatus::WrongHash(got);
        }
        BlobStatus::Valid
    }

    /// The blob files of the store at `store` (see [`super::list_blob_files`]).
    pub fn list_blob_files(&self, store: &Path) -> io::Result<Vec<([u8; 32], PathBuf)>> {
        let dir = store.join(BLOBS_DIR);
        if self.vfs.kind(&dir)?.is_none() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for shard in list_dir(self.vfs, &dir)? {
            if shard.kind != EntryKind::Dir || !layout::is_blob_shard(&shard.name) {
                continue;
            }
            let sdir = dir.join(&shard.name);
            let files = match list_dir(self.vfs, &sdir) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for f in files {
                if f.kind != EntryKind::File {
                    continue;
                }
                if let Some(h) = layout::parse_blob_name(&shard.name, &f.name) {
                    out.push((h, sdir.join(f.name)));
                }
            }
        }
        Ok(out)
    }

    /// Checks the claim-check references and finds orphan blobs (see
    /// [`super::check_blobs`]).
    pub fn check_blobs(&self, info: &StoreInfo) -> Vec<Problem> {
        let mut problems = Vec::new();
        // Every reference to each hash, hashes in the order first found.
        let mut refs: HashMap<[u8; 32], Vec<(&Path, &BlobRef)>> = HashMap::new();
        let mut order = Vec::new();
        for seg in info
            .streams
            .iter()
            .flat_map(|s| s.buckets.iter())
            .flat_map(|b| b.segments.iter())
        {
            for r in &seg.blob_refs {
                let these = refs.entry(r.hash).or_default();
                if these.is_empty() {
                    order.push(r.hash);
                }
                these.push((&seg.path, r));
            }
        }
        for hash in &order {
            let these = &refs[hash];
            let path = blob_path(&info.path, hash);
            let status = self.check_blob_file(&path, hash, these[0].1.length);
            if status == BlobStatus::Valid {
                continue;
            }
            // Retention may have deleted the segments read since, and the
            // collection after it their blobs: a reference counts only while
            // its segment is there.
            let Some(&(seg, r)) = these
                .iter()
                .find(|(seg, _)| !matches!(self.vfs.kind(seg), Ok(None)))
            else {
                continue;
            };
            let want = match status {
                BlobStatus::WrongLength(_) => format!(", {} expected", r.length),
                _ => String::new(),
            };
            problems.push(Problem::file(
                &path,
                format!(
                    "{status}{want}; referred to by offset {} in {} at byte {}",
                    r.offset,
                    seg.display(),
                    r.position
                ),
            ));
        }
        // While the store is in use, an unreferenced blob may be one being
        // sent (its message not appended when its segment was read) or one
        // the collection after retention is about to remove.
        if info.in_use == Some(true) {
            return problems;
        }
        match self.list_blob_files(&info.path) {
            Ok(files) => {
                for (h, path) in files {
                    if !refs.contains_key(&h) {
                        problems.push(Problem::warn(
                            &path,
                            None,
                            "orphan blob: no message refers to it (warning: nothing is lost; \
                             the next open or `repair` removes it)",
                        ));
                    }
                }
            }
            Err(e) => problems.push(Problem::file(
                &info.path.join(BLOBS_DIR),
                format!("cannot list: {e}"),
            )),
        }
        problems
    }
}
