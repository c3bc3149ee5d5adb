//! What a store takes on disk: for every regular file under the store, its
//! length (the apparent size) and the blocks allocated to it (`st_blocks`
//! × 512, the disk used). The two differ: segments and consumer journals
//! are created at their full size and filled in (sparse, reserved ahead by
//! `fallocate`), so a new segment of 64 MiB apparent size may hold a few
//! blocks, and a sealed one every block.

use super::read::{list_dir, open_file};
use super::Inspector;
use crate::io::EntryKind;
use crate::layout::{CONSUMERS_DIR, STREAMS_DIR};
use crate::{name, Error, Result};
use std::io;
use std::path::Path;

/// Directories below a stream or the store a walk descends at most (the
/// layout needs 3: `consumers/<c>/`, `p<k>/quarantine/`, `blobs/<2 hex>/`).
const DEPTH_MAX: usize = 8;

/// The size of a set of files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Regular files counted.
    pub files: u64,
    /// Sum of their lengths.
    pub apparent_bytes: u64,
    /// Sum of the disk blocks allocated to them, in bytes; `None` if the
    /// file system did not tell for some file.
    pub allocated_bytes: Option<u64>,
}

impl DiskUsage {
    fn add(&mut self, other: DiskUsage) {
        self.files += other.files;
        self.apparent_bytes += other.apparent_bytes;
        self.allocated_bytes = match (self.allocated_bytes, other.allocated_bytes) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
    }
}

/// The disk usage of one stream directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamDiskUsage {
    /// The stream's name.
    pub name: String,
    /// Every file of the stream: segments, indexes, marks, quarantined
    /// tails, its consumers' files.
    pub total: DiskUsage,
    /// Of those, its consumers' files (configurations, checkpoints,
    /// journals).
    pub consumers: DiskUsage,
}

/// The disk usage of a store ([`disk_usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreDiskUsage {
    /// Each stream, sorted by name.
    pub streams: Vec<StreamDiskUsage>,
    /// Every file under the store directory (streams, blobs, the store's
    /// own files, anything else).
    pub total: DiskUsage,
}

/// The disk usage of the store at `path`: every regular file under it
/// (symbolic links and other special files are neither followed nor
/// counted), summed per stream and in total. Fails if a directory or file
/// cannot be read (one that vanishes meanwhile is skipped).
pub fn disk_usage(path: &Path) -> Result<StoreDiskUsage> {
    Inspector::real().disk_usage(path)
}

impl Inspector<'_> {
    /// The disk usage of the store at `path` (see [`disk_usage`]).
    pub fn disk_usage(&self, path: &Path) -> Result<StoreDiskUsage> {
        let total = self.walk(path, 0)?;
        let streams_dir = path.join(STREAMS_DIR);
        let mut streams = Vec::new();
        let entries = match list_dir(self.vfs, &streams_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io("list", &streams_dir, e)),
        };
        for e in entries {
            if e.kind != EntryKind::Dir || name::validate(&e.name).is_err() {
                continue;
            }
            let dir = streams_dir.join(&e.name);
            streams.push(StreamDiskUsage {
                total: self.walk(&dir, 0)?,
                consumers: self.walk(&dir.join(CONSUMERS_DIR), 0)?,
                name: e.name,
            });
        }
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(StoreDiskUsage { streams, total })
    }

    /// The files under `dir` (none if it does not exist). A file or
    /// directory that vanishes meanwhile (retention, a rotation) is skipped.
    fn walk(&self, dir: &Path, depth: usize) -> Result<DiskUsage> {
        let mut usage = DiskUsage {
            allocated_bytes: Some(0),
            ..DiskUsage::default()
        };
        let entries = match list_dir(self.vfs, dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(usage),
            Err(e) => return Err(Error::io("list", dir, e)),
        };
        for e in entries {
            let path = dir.join(&e.name);
            match e.kind {
                EntryKind::File => {
                    let stat = |e| Error::io("stat", &path, e);
                    let Some(f) = open_file(self.vfs, &path).map_err(stat)? else {
                        continue;
                    };
                    usage.add(DiskUsage {
                        files: 1,
                        apparent_bytes: f.len().map_err(stat)?,
                        allocated_bytes: f.allocated_bytes().map_err(stat)?,
                    });
                }
                EntryKind::Dir if depth < DEPTH_MAX => usage.add(self.walk(&path, depth + 1)?),
                _ => {}
            }
        }
        Ok(usage)
    }
}
