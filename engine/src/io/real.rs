//! The real file system.

use super::{DirEntry, EntryKind, LockGuard, MapMemory, OpenMode, VDir, VFile, Vfs};
use rustix::fs::{FallocateFlags, FlockOperation, SeekFrom};
use rustix::io::Errno;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, FileExt as UnixFileExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile {
    file: File,
    /// Where the file system cannot fallocate: `0..written_to` was reserved
    /// by writing through this handle.
    written_to: AtomicU64,
}

#[derive(Debug)]
struct RealLock {
    _file: File,
}

impl LockGuard for RealLock {}

#[derive(Debug)]
struct RealDir {
    dir: File,
}

impl VDir for RealDir {
    fn sync(&self) -> io::Result<()> {
        self.dir.sync_all()
    }
}

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
        Ok(Arc::new(RealFile {
            file,
            written_to: AtomicU64::new(0),
        }))
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

    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VDir>> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(path)?;
        Ok(Box::new(RealDir { dir }))
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
        loop {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(Box::new(RealLock { _file: file })),
                Err(Errno::INTR) => continue,
                Err(Errno::WOULDBLOCK) => return Err(io::Error::from(io::ErrorKind::WouldBlock)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn lock_held(&self, path: &Path) -> io::Result<Option<bool>> {
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(false)),
            Err(e) => return Err(e),
        };
        // `lock` never follows a symlink: nothing can hold it through one.
        if !meta.file_type().is_file() {
            return Ok(Some(false));
        }
        // Listed by the kernel: asking needs no descriptor of the file, so a
        // `Store::open` at the same moment is never refused because of it.
        let mut text = String::new();
        let read = File::open(PROC_LOCKS).and_then(|f| {
            io::Read::read_to_string(&mut io::Read::take(f, PROC_LOCKS_BYTES_MAX), &mut text)
        });
        if read.is_err() {
            return Ok(None);
        }
        let dev = meta.dev();
        let file = (rustix::fs::major(dev), rustix::fs::minor(dev), meta.ino());
        Ok(Some(text.lines().any(|l| flock_of(l) == Some(file))))
    }
}

/// Where Linux lists the file locks held (`proc(5)`).
const PROC_LOCKS: &str = "/proc/locks";

/// Most bytes of [`PROC_LOCKS`] read (about 100,000 locks).
const PROC_LOCKS_BYTES_MAX: u64 = 8 << 20;

/// The file (device major and minor, inode) of a granted `flock` lock in
/// one line of [`PROC_LOCKS`]: `1: FLOCK  ADVISORY  WRITE 6505 fe:00:5308729
/// 0 EOF` (device numbers in hex); `None` for other lines (record locks,
/// waiters marked `->`).
fn flock_of(line: &str) -> Option<(u32, u32, u64)> {
    let mut f = line.split_whitespace().skip(1);
    if f.next()? != "FLOCK" {
        return None;
    }
    let mut id = f.nth(3)?.split(':');
    let major = u32::from_str_radix(id.next()?, 16).ok()?;
    let minor = u32::from_str_radix(id.next()?, 16).ok()?;
    let ino = id.next()?.parse().ok()?;
    Some((major, minor, ino))
}

/// Reserves `from..len` of `file` without fallocate, as `posix_fallocate`
/// does on such file systems: the last byte of every block is written if it
/// reads as zero (a hole reads as zero), so that the block is allocated and
/// a later write to it through a memory map cannot run out of space. A byte
/// that is not zero is data and is left alone. Only the reservation ahead of
/// the writer (and new files before their header) goes through here, never
/// a range being written.
fn allocate_by_writing(file: &File, from: u64, len: u64) -> io::Result<()> {
    let meta = file.metadata()?;
    let size = meta.len();
    let block = meta.blksize().clamp(512, 1 << 20);
    let mut pos = from / block * block;
    while pos < len {
        // Writing the range's last byte past the end also grows the file.
        let at = (pos + block).min(len) - 1;
        let mut b = [0u8; 1];
        let data = at < size && file.read_at(&mut b, at)? == 1 && b[0] != 0;
        if !data {
            file.write_all_at(&[0], at)?;
        }
        pos += block;
    }
    Ok(())
}

impl VFile for RealFile {
    fn data_ranges(&self, range: Range<u64>) -> io::Result<Vec<Range<u64>>> {
        // `SEEK_DATA`/`SEEK_HOLE` (lseek(2)): a hole reads as zeros by
        // definition, and a file system that does not track holes reports
        // the whole file as data. Only the descriptor's offset moves, which
        // nothing else uses (reads and writes are positional or mapped).
        let mut out = Vec::new();
        let mut pos = range.start;
        while pos < range.end {
            let start = match rustix::fs::seek(&self.file, SeekFrom::Data(pos)) {
                Ok(p) => p,
                // No data at or after `pos`.
                Err(Errno::NXIO) => break,
                Err(Errno::INTR) => continue,
                // Not supported here: all of it may be data.
                Err(Errno::INVAL) | Err(Errno::OPNOTSUPP) => {
                    out.push(pos..range.end);
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            if start >= range.end {
                break;
            }
            let end = match rustix::fs::seek(&self.file, SeekFrom::Hole(start)) {
                Ok(p) => p,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            // A hole at `start` would be a file system error; never loop.
            let end = end.clamp(start + 1, range.end);
            out.push(start..end);
            pos = end;
        }
        Ok(out)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn allocated_bytes(&self) -> io::Result<Option<u64>> {
        use std::os::unix::fs::MetadataExt;
        Ok(Some(self.file.metadata()?.blocks().saturating_mul(512)))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        // fallocate(2) with its own return value: `posix_fallocate` returns
        // its error instead of setting errno, and wrappers that read errno
        // afterwards report whatever an earlier call left there.
        loop {
            match rustix::fs::fallocate(&self.file, FallocateFlags::empty(), 0, len) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                // The file system cannot reserve space (some network and
                // copy-on-write file systems): write the blocks instead.
                Err(Errno::OPNOTSUPP) | Err(Errno::NOSYS) => {
                    // This handle's earlier reservations are not redone.
                    let from = self.written_to.load(Ordering::Relaxed).min(len);
                    allocate_by_writing(&self.file, from, len)?;
                    self.written_to.fetch_max(len, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every non-zero byte lies in a reported data range, whatever the file
    /// system reports for holes: a reserved part, a sparse part, and data
    /// written through a shared map and with `pwrite`.
    #[test]
    fn data_ranges_cover_every_written_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let f = RealFs.open(&path, OpenMode::CreateNew).unwrap();
        let len = 8u64 << 20;
        f.set_len(len).unwrap();
        f.allocate(1 << 20).unwrap();
        let at = [0u64, 4095, 300_000, (3 << 20) + 17, len - 1];
        for &p in &at[..3] {
            f.write_all_at(&[0xAB], p).unwrap();
        }
        let (map, mut writer) = crate::io::SharedMap::writable(f.map_mut(len).unwrap(), 0);
        for &p in &at[3..] {
            writer.slice_mut(p as usize..p as usize + 1)[0] = 0xCD;
        }
        drop((map, writer));
        let ranges = f.data_ranges(0..len).unwrap();
        for p in at {
            assert!(
                ranges.iter().any(|r| r.contains(&p)),
                "byte {p} is outside {ranges:?}"
            );
        }
        assert!(ranges.windows(2).all(|w| w[0].end <= w[1].start));
        assert!(ranges.iter().all(|r| r.start < r.end && r.end <= len));
        // A range that starts past the last data reports nothing beyond it.
        let tail = f.data_ranges(len - 1..len).unwrap();
        assert_eq!(tail, vec![len - 1..len]);
        assert!(f.data_ranges(len..len).unwrap().is_empty());
    }

    #[test]
    fn reserving_by_writing_fills_holes_keeps_data_and_grows_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.path().join("f"))
            .unwrap();
        file.set_len(256 << 10).unwrap();
        file.write_all_at(b"data", 100_000).unwrap();
        file.write_all_at(&[9], 8191).unwrap();
        let len = (1 << 20) + 100;
        allocate_by_writing(&file, 0, len).unwrap();
        let meta = file.metadata().unwrap();
        assert_eq!(meta.len(), len);
        assert!(meta.blocks() * 512 >= len, "blocks: {}", meta.blocks());
        let mut b = [0u8; 4];
        file.read_exact_at(&mut b, 100_000).unwrap();
        assert_eq!(&b, b"data");
        file.read_exact_at(&mut b[..1], 8191).unwrap();
        assert_eq!(b[0], 9);
        // Only the part past `from` is touched: a later reservation of the
        // same handle starts where the last one ended.
        allocate_by_writing(&file, len, len + 5000).unwrap();
        assert_eq!(file.metadata().unwrap().len(), len + 5000);
    }

    #[test]
    fn granted_flock_lines_name_their_file() {
        assert_eq!(
            flock_of("1: FLOCK  ADVISORY  WRITE 6505 fe:00:5308729 0 EOF"),
            Some((0xfe, 0, 5308729))
        );
        assert_eq!(
            flock_of("12: FLOCK  ADVISORY  READ 1 103:0a:7 0 EOF"),
            Some((0x103, 0x0a, 7))
        );
        assert_eq!(
            flock_of("1: -> FLOCK  ADVISORY  WRITE 6506 fe:00:5308729 0 EOF"),
            None
        );
        assert_eq!(
            flock_of("2: POSIX  ADVISORY  WRITE 77 fe:00:5308729 0 EOF"),
            None
        );
        assert_eq!(flock_of("3: OFDLCK ADVISORY  READ -1 00:05:12 0 EOF"), None);
        assert_eq!(flock_of(""), None);
        assert_eq!(flock_of("4: FLOCK ADVISORY WRITE 1 zz:00:1 0 EOF"), None);
    }

    #[test]
    fn a_held_lock_is_seen_without_taking_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        assert_eq!(RealFs.lock_held(&path).unwrap(), Some(false), "no file");
        assert!(!path.exists(), "asking creates nothing");
        let guard = RealFs.lock(&path).unwrap();
        let held = RealFs.lock_held(&path).unwrap();
        if std::path::Path::new(PROC_LOCKS).exists() {
            assert_eq!(held, Some(true));
        } else {
            assert_eq!(held, None);
        }
        // Asking did not take it: it is still ours alone.
        assert_eq!(
            RealFs.lock(&path).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        drop(guard);
        assert_ne!(RealFs.lock_held(&path).unwrap(), Some(true));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        assert_eq!(RealFs.lock_held(&link).unwrap(), Some(false));
    }
}
