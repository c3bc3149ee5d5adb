//! All file I/O of the engine goes through the [`Vfs`] trait, so tests can
//! swap the real file system for one that cuts power, tears writes and fails
//! operations (`sim`, behind the `sim` feature).

#[expect(
    unsafe_code,
    reason = "the memory maps: the one module with unsafe code, each block with its SAFETY comment"
)]
pub(crate) mod map;
pub(crate) mod real;
#[cfg(feature = "sim")]
pub mod sim;

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use map::MapMemory;
pub(crate) use map::{MapWriter, SharedMap};

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a new file (fails if it exists), read-write, mode 0600.
    CreateNew,
    /// Open an existing file read-write.
    ReadWrite,
    /// Open an existing file read-only.
    ReadOnly,
}

/// What a directory entry is. Symlinks are reported as such, never followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// Anything else (symlink, FIFO, socket, device).
    Other,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// File name (not the full path). Names that are not UTF-8 are skipped.
    pub name: String,
    /// What it is.
    pub kind: EntryKind,
}

/// A file system. Paths are absolute or relative to the process.
pub trait Vfs: Send + Sync + std::fmt::Debug {
    /// Creates one directory (mode 0700). Fails if it exists.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// Lists a directory.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// What is at `path`, without following a symlink; `None` if nothing.
    fn kind(&self, path: &Path) -> io::Result<Option<EntryKind>>;
    /// Opens a regular file. Never follows a symlink; fails on anything that
    /// is not a regular file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>>;
    /// Renames a file or directory, replacing a file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Opens a directory, to sync it ([`VDir::sync`]). Fails as `open(2)`
    /// does (`EMFILE` when the process has no descriptor left, `ENOENT`):
    /// then nothing was synced, and no durability step failed.
    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VDir>>;
    /// Makes the directory's entries durable: [`Vfs::open_dir`], then
    /// [`VDir::sync`].
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.open_dir(path)?.sync()
    }
    /// Takes an exclusive lock on the file at `path` (created if missing).
    /// Fails at once with `ErrorKind::WouldBlock` if someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
    /// Whether someone (this process or another) holds the lock of
    /// [`Vfs::lock`] on the file at `path`, found without taking it and
    /// without creating the file: `Some(false)` if there is no such file,
    /// `None` if this file system cannot tell.
    fn lock_held(&self, path: &Path) -> io::Result<Option<bool>>;
}

/// Releases the lock when dropped.
pub trait LockGuard: Send + Sync + std::fmt::Debug {}

/// An open directory.
pub trait VDir: Send + Sync + std::fmt::Debug {
    /// Makes the directory's entries durable (fsync on the directory).
    fn sync(&self) -> io::Result<()>;
}

/// An open file.
#[cfg_attr(
    feature = "sim",
    expect(
        clippy::len_without_is_empty,
        reason = "a file's length is an I/O call, emptiness is not asked"
    )
)]
pub trait VFile: Send + Sync + std::fmt::Debug {
    /// Current length.
    fn len(&self) -> io::Result<u64>;
    /// Sets the length (the new part reads as zeros and is not reserved).
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Reserves disk blocks for `0..len` (fallocate), growing the file
    /// if it is shorter. Afterwards writes within `0..len` cannot hit ENOSPC.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Reads up to `buf.len()` bytes at `pos`; returns how many were read.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Makes data and length durable (fsync).
    fn sync(&self) -> io::Result<()>;
    /// Maps the first `len` bytes read-write and shared. The file must be at
    /// least `len` long and is never shrunk while mapped.
    fn map_mut(&self, len: u64) -> io::Result<MapMemory>;
    /// Maps the first `len` bytes read-only.
    fn map_read(&self, len: u64) -> io::Result<MapMemory>;
    /// The parts of `range` that may hold data, in order: every byte of
    /// `range` outside them reads as zero (a hole). A file system that
    /// cannot tell returns `range` whole, which is always correct.
    fn data_ranges(&self, range: Range<u64>) -> io::Result<Vec<Range<u64>>> {
        Ok(if range.is_empty() {
            Vec::new()
        } else {
            vec![range]
        })
    }
    /// Bytes of disk the file takes (allocated blocks, `st_blocks * 512`),
    /// which for a sparse or preallocated file differs from its length;
    /// `None` where the file system cannot tell.
    fn allocated_bytes(&self) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

/// Reads exactly `buf.len()` bytes at `pos`, or fails with `UnexpectedEof`.
pub(crate) fn read_exact_at(f: &dyn VFile, mut buf: &mut [u8], mut pos: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = f.read_at(buf, pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        pos += n as u64;
    }
    Ok(())
}

/// Reads a whole file of at most `limit` bytes; a longer file is an error
/// (`InvalidData`), so a hostile file cannot make us allocate without bound.
pub(crate) fn read_file_limited(f: &dyn VFile, limit: u64) -> io::Result<Vec<u8>> {
    let len = f.len()?;
    if len > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "file too large"));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(f, &mut buf, 0)?;
    Ok(buf)
}

/// Writes the temporary file `tmp` of a preallocated file (a segment, a
/// journal): `len` bytes long (sparse), the first `reserve` reserved on disk,
/// `head` at byte 0, synced. A leftover of an earlier attempt is replaced; if
/// a step fails, the file is removed again. The caller renames it into place
/// and syncs the directory; `what` names it in errors.
pub(crate) fn create_preallocated(
    vfs: &dyn Vfs,
    tmp: &Path,
    len: u64,
    reserve: u64,
    head: &[u8],
    what: &'static str,
) -> crate::Result<Arc<dyn VFile>> {
    if vfs
        .kind(tmp)
        .map_err(|e| crate::Error::io("stat", tmp, e))?
        .is_some()
    {
        vfs.remove_file(tmp)
            .map_err(|e| crate::Error::io("remove", tmp, e))?;
    }
    let build = || -> io::Result<Arc<dyn VFile>> {
        let f = vfs.open(tmp, OpenMode::CreateNew)?;
        f.set_len(len)?;
        f.allocate(reserve)?;
        f.write_all_at(head, 0)?;
        f.sync()?;
        Ok(f)
    };
    build().map_err(|e| {
        let _ = vfs.remove_file(tmp);
        crate::Error::io(what, tmp, e)
    })
}

/// Reads a framed file (see `format::meta`) of kind `magic` in format
/// `version` whose body is at most `body_max` bytes; `None` if there is no
/// such file. Damage is [`crate::Error::Corrupt`] at the field found wrong, an
/// unknown version [`crate::Error::UnsupportedVersion`]; `what` names the
/// file's kind in the message.
pub(crate) fn read_framed(
    vfs: &dyn Vfs,
    path: &Path,
    magic: [u8; 8],
    version: u32,
    body_max: usize,
    what: &str,
) -> crate::Result<Option<Vec<u8>>> {
    Ok(read_framed_versions(vfs, path, magic, version..=version, body_max, what)?.map(|(_, b)| b))
}

/// Like [`read_framed`], for a file in any of the format `versions`: the
/// version found and the body.
pub(crate) fn read_framed_versions(
    vfs: &dyn Vfs,
    path: &Path,
    magic: [u8; 8],
    versions: std::ops::RangeInclusive<u32>,
    body_max: usize,
    what: &str,
) -> crate::Result<Option<(u32, Vec<u8>)>> {
    use crate::format::meta::{self, MetaDecodeError};
    let f = match vfs.open(path, OpenMode::ReadOnly) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(crate::Error::io("open", path, e)),
    };
    let mut bytes = read_file_limited(&*f, meta::file_bytes_max(body_max))
        .map_err(|e| crate::Error::io("read", path, e))?;
    match meta::decode_versioned(magic, versions, &bytes, body_max) {
        Ok((version, _)) => {
            bytes.drain(..meta::BODY_OFFSET);
            Ok(Some((version, bytes)))
        }
        Err(MetaDecodeError::Version(v)) => Err(crate::Error::UnsupportedVersion {
            file: path.to_path_buf(),
            version: v,
        }),
        Err(e) => Err(crate::Error::corrupt(
            path,
            e.position(),
            format!("{what}: {e}"),
        )),
    }
}

/// Writes `bytes` to `dir/name` crash-safely: a temporary file is written and
/// synced, renamed over `name`, and the directory synced.
pub(crate) fn write_file_atomic(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> crate::Result<()> {
    // The directory is opened first: failing to open it (no descriptor
    // left) then changes nothing.
    let d = vfs
        .open_dir(dir)
        .map_err(|e| crate::Error::io("open directory", dir, e))?;
    let tmp = write_tmp_synced(vfs, dir, name, bytes)?;
    let target = dir.join(name);
    vfs.rename(&tmp, &target)
        .map_err(|e| crate::Error::io("rename", &tmp, e))?;
    d.sync()
        .map_err(|e| crate::Error::io("sync directory", dir, e))?;
    Ok(())
}

/// The first half of [`write_file_atomic`]: writes `bytes` to `.<name>.tmp`
/// in `dir` and syncs it; returns its path. The caller renames it into place
/// and syncs the directory (possibly together with other renames).
pub(crate) fn write_tmp_synced(
    vfs: &dyn Vfs,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> crate::Result<PathBuf> {
    let tmp = dir.join(crate::layout::tmp_file_name(name));
    let map_err = |op, p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |e| crate::Error::io(op, p, e)
    };
    if vfs.kind(&tmp).map_err(map_err("stat", &tmp))?.is_some() {
        vfs.remove_file(&tmp).map_err(map_err("remove", &tmp))?;
    }
    let f = vfs
        .open(&tmp, OpenMode::CreateNew)
        .map_err(map_err("create", &tmp))?;
    f.write_all_at(bytes, 0).map_err(map_err("write", &tmp))?;
    f.sync().map_err(map_err("sync", &tmp))?;
    Ok(tmp)
}

/// Creates `path` and missing parents, syncing each parent.
pub(crate) fn create_dir_all(vfs: &dyn Vfs, path: &Path) -> crate::Result<()> {
    match vfs
        .kind(path)
        .map_err(|e| crate::Error::io("stat", path, e))?
    {
        Some(EntryKind::Dir) => return Ok(()),
        Some(_) => {
            return Err(crate::Error::io(
                "create directory",
                path,
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "exists and is not a directory",
                ),
            ))
        }
        None => {}
    }
    let parent: PathBuf = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_dir_all(vfs, &parent)?;
    let d = vfs
        .open_dir(&parent)
        .map_err(|e| crate::Error::io("open directory", &parent, e))?;
    match vfs.create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(crate::Error::io("create directory", path, e)),
    }
    d.sync()
        .map_err(|e| crate::Error::io("sync directory", &parent, e))
}

/// Removes a directory tree that Spool created (plain files and directories
/// only; anything else is left and makes this fail).
pub(crate) fn remove_dir_all(vfs: &dyn Vfs, dir: &Path) -> crate::Result<()> {
    for e in vfs
        .read_dir(dir)
        .map_err(|e| crate::Error::io("list", dir, e))?
    {
        let p = dir.join(&e.name);
        match e.kind {
            EntryKind::Dir => remove_dir_all(vfs, &p)?,
            _ => vfs
                .remove_file(&p)
                .map_err(|e| crate::Error::io("remove", &p, e))?,
        }
    }
    vfs.remove_dir(dir)
        .map_err(|e| crate::Error::io("remove directory", dir, e))
}
