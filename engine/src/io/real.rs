//! The real file system.

use super::{DirEntry, EntryKind, LockGuard, MapMemory, OpenMode, VFile, Vfs};
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt as UnixFileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
}

#[derive(Debug)]
struct RealLock {
    _file: File,
}

impl LockGuard for RealLock {}

fn entry_kind(ft: fs::FileType) -> EntryKind {
    if ft.is_file() {
        EntryKind::File
    } else if ft.is_dir() {
        EntryKind::Dir
    } else {
        EntryKind::Other
    }
}

impl Vfs for RealFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::DirBuilder::new().mode(0o700).create(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for e in fs::read_dir(path)? {
            let e = e?;
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            out.push(DirEntry {
                name,
                kind: entry_kind(e.file_type()?),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        match fs::symlink_metadata(path) {
            Ok(m) => Ok(Some(entry_kind(m.file_type()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>> {
        let mut o = OpenOptions::new();
        // O_NOFOLLOW: a symlink planted in the store is an error, not a
        // way to make us write elsewhere. O_NONBLOCK: opening a FIFO must
        // not hang; it is rejected below as not a regular file.
        o.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
        match mode {
            OpenMode::CreateNew => {
                o.read(true).write(true).create_new(true).mode(0o600);
            }
            OpenMode::ReadWrite => {
                o.read(true).write(true);
            }
            OpenMode::ReadOnly => {
                o.read(true);
            }
        }
        let file = o.open(path)?;
        if !file.metadata()?.file_type().is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Arc::new(RealFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        // flock locks belong to the open file description, so a second open
        // in the same process conflicts too, and the kernel drops the lock
        // when the holder dies.
        file.try_lock_exclusive().map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EWOULDBLOCK)
            {
                io::Error::from(io::ErrorKind::WouldBlock)
            } else {
                e
            }
        })?;
        Ok(Box::new(RealLock { _file: file }))
    }
}

impl VFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.file.allocate(len)
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, pos) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.file.write_all_at(buf, pos)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn map_mut(&self, len: u64) -> io::Result<MapMemory> {
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if self.len()? < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "map past the end of the file",
            ));
        }
        MapMemory::map_file_mut(&self.file, len)
    }

    fn map_read(&self, len: u64) -> io::Result<MapMemory> {
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        if self.len()? < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "map past the end of the file",
            ));
        }
        MapMemory::map_file_read(&self.file, len)
    }
}
