//! Plain reads through the engine's [`Vfs`], each bounded: a file's length
//! is checked against its kind's limit before anything is allocated, and a
//! read never goes past the length seen then.

use super::types::Problem;
use crate::format::meta::{self, MetaDecodeError};
use crate::io::{DirEntry, EntryKind, OpenMode, VFile, Vfs};
use std::io;
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes read from files by the inspection functions of this process.
static BYTES_READ: AtomicU64 = AtomicU64::new(0);

/// Bytes read from files by the inspection functions of this process so far
/// (segments, indexes, meta files, journals, blobs), for a progress display.
pub fn bytes_read() -> u64 {
    BYTES_READ.load(Ordering::Relaxed)
}

/// Counts `n` bytes read.
pub(super) fn count_read(n: usize) {
    BYTES_READ.fetch_add(n as u64, Ordering::Relaxed);
}

/// A file read with a size limit.
pub(crate) enum Bounded {
    /// The whole file.
    Bytes(Vec<u8>),
    /// No such file.
    Missing,
    /// The file is longer than the limit (its length); nothing was read.
    TooLarge(u64),
}

/// Opens the regular file at `path` for reading; `None` if there is none.
/// A symlink, FIFO or directory is an error, never followed or opened.
pub(crate) fn open_file(
    vfs: &dyn Vfs,
    path: &Path,
) -> io::Result<Option<std::sync::Arc<dyn VFile>>> {
    match vfs.kind(path)? {
        None => return Ok(None),
        Some(EntryKind::File) => {}
        Some(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ))
        }
    }
    match vfs.open(path, OpenMode::ReadOnly) {
        Ok(f) => Ok(Some(f)),
        // Removed between the two calls (retention, a rotation).
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads up to `n` bytes of `f` at `pos`: fewer if the file ends first.
pub(crate) fn read_at_most(f: &dyn VFile, pos: u64, n: u64) -> io::Result<Vec<u8>> {
    // Callers bound `n` by a length limit of at most 1 GiB.
    let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], pos + done as u64) {
            Ok(0) => break,
            Ok(k) => done += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    count_read(done);
    Ok(buf)
}

/// Reads the whole regular file at `path` if it is at most `limit` bytes.
pub(crate) fn read_bounded(vfs: &dyn Vfs, path: &Path, limit: u64) -> io::Result<Bounded> {
    let Some(f) = open_file(vfs, path)? else {
        return Ok(Bounded::Missing);
    };
    let len = f.len()?;
    if len > limit {
        return Ok(Bounded::TooLarge(len));
    }
    Ok(Bounded::Bytes(read_at_most(&*f, 0, len)?))
}

/// The entries of a directory, sorted by name (names that are not UTF-8
/// are skipped: Spool never creates them).
pub(crate) fn list_dir(vfs: &dyn Vfs, dir: &Path) -> io::Result<Vec<DirEntry>> {
    let mut v = vfs.read_dir(dir)?;
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// The problem of a file longer than its kind's limit.
pub(super) fn too_large(path: &Path, len: u64, limit: u64) -> Problem {
    Problem::file(
        path,
        format!("file of {len} bytes exceeds the limit of {limit} bytes; not read"),
    )
}

/// What [`read_framed`] found.
pub(super) enum Framed {
    /// No such file.
    Missing,
    /// The file's format version and body.
    Body(u32, Vec<u8>),
    /// The file is unusable; the problem was recorded. A version unknown to
    /// this build comes with the version found.
    Bad(Option<u32>),
}

/// Reads a framed file (`format::meta`) of kind `magic` in format
/// `version`, as the engine's open reads it (`io::read_framed`): damage is a
/// problem at the field found wrong, named by `what`.
pub(super) fn read_framed(
    vfs: &dyn Vfs,
    path: &Path,
    (magic, version, body_max): ([u8; 8], u32, usize),
    what: &str,
    problems: &mut Vec<Problem>,
) -> Framed {
    read_framed_versions(
        vfs,
        path,
        (magic, version..=version, body_max),
        what,
        problems,
    )
}

/// [`read_framed`] of a file in any of the format `versions` (as the
/// engine's `io::read_framed_versions`).
pub(super) fn read_framed_versions(
    vfs: &dyn Vfs,
    path: &Path,
    (magic, versions, body_max): ([u8; 8], RangeInclusive<u32>, usize),
    what: &str,
    problems: &mut Vec<Problem>,
) -> Framed {
    let limit = meta::file_bytes_max(body_max);
    let mut bytes = match read_bounded(vfs, path, limit) {
        Ok(Bounded::Bytes(b)) => b,
        Ok(Bounded::Missing) => return Framed::Missing,
        Ok(Bounded::TooLarge(len)) => {
            problems.push(too_large(path, len, limit));
            return Framed::Bad(None);
        }
        Err(e) => {
            problems.push(Problem::file(path, format!("cannot read: {e}")));
            return Framed::Bad(None);
        }
    };
    match meta::decode_versioned(magic, versions, &bytes, body_max) {
        Ok((version, _)) => {
            bytes.drain(..meta::BODY_OFFSET);
            Framed::Body(version, bytes)
        }
        Err(e) => {
            problems.push(Problem::at(path, e.position(), format!("{what}: {e}")));
            match e {
                MetaDecodeError::Version(v) => Framed::Bad(Some(v)),
                _ => Framed::Bad(None),
            }
        }
    }
}
