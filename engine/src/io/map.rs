//! Memory maps: the only module of the crate that uses `unsafe`.
//!
//! A [`SharedMap`] is a fixed-length view of a file's bytes that many threads
//! read while at most one [`MapWriter`] appends. Soundness rests on three rules,
//! enforced here rather than by callers:
//!
//! 1. The data area is split by `committed` (an atomic): readers borrow slices
//!    only below it; the writer writes only at or above it and raises it with
//!    `Release` after the bytes are in place, readers load it with `Acquire`.
//!    Readers and the writer therefore never touch the same byte at once.
//! 2. The header area (`0..data_start`) is never lent out: it is copied in and
//!    out under a mutex.
//! 3. The memory stays valid as long as the `SharedMap` lives: the mapping (or
//!    heap buffer) is owned by it and never resized. The store's contract (see
//!    DESIGN.md, "memory-map soundness") is that no process truncates or
//!    rewrites a mapped file while the store holds its lock; Spool itself never
//!    truncates a segment.
//!
//! Besides real file maps (`memmap2`), a map can be backed by a heap buffer.
//! The simulated file system uses that to model the page cache.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Called by a heap-backed map on flush, with the byte range to make durable
/// and a copy of those bytes.
pub(crate) type FlushHook = Arc<dyn Fn(u64, &[u8]) -> io::Result<()> + Send + Sync>;

enum Backing {
    Mut(memmap2::MmapMut),
    /// Owns the mapping; reads go through `MapMemory::ptr`.
    Read(memmap2::Mmap),
    Heap {
        #[expect(dead_code, reason = "owns the buffer")]
        buf: Arc<HeapBuf>,
        flush: FlushHook,
    },
}

/// The raw memory behind a map: a file mapping or a heap buffer.
#[doc(hidden)]
pub struct MapMemory {
    ptr: *mut u8,
    len: usize,
    backing: Backing,
}

// SAFETY: `MapMemory` owns its mapping or buffer; the raw pointer is only an
// address into it. All access to the bytes goes through `SharedMap` and
// `MapWriter`, which serialise conflicting access as described in the module
// documentation.
unsafe impl Send for MapMemory {}
// SAFETY: as above; shared references only permit the reads and locked writes
// that `SharedMap` allows.
unsafe impl Sync for MapMemory {}

impl MapMemory {
    /// Maps `len` bytes of `file` read-write and shared.
    pub(crate) fn map_file_mut(file: &std::fs::File, len: usize) -> io::Result<MapMemory> {
        // SAFETY: memmap2 requires that the file is not truncated or modified
        // outside this process while mapped. The store's exclusive lock and
        // its rule of never truncating a mapped file uphold that; tampering
        // by other programs is outside the contract (DESIGN.md).
        let mut m = unsafe { memmap2::MmapOptions::new().len(len).map_mut(file)? };
        let ptr = m.as_mut_ptr();
        Ok(MapMemory {
            ptr,
            len,
            backing: Backing::Mut(m),
        })
    }

    /// Maps `len` bytes of `file` read-only.
    pub(crate) fn map_file_read(file: &std::fs::File, len: usize) -> io::Result<MapMemory> {
        if len == 0 {
            // An empty map is not allowed by mmap; use an empty heap buffer.
            return Ok(MapMemory::heap(
                Arc::new(HeapBuf::new(0)),
                Arc::new(|_, _| Ok(())),
            ));
        }
        // SAFETY: as in `map_file_mut`; files mapped read-only (sealed
        // segments, indexes) are never written again once renamed in place.
        let m = unsafe { memmap2::MmapOptions::new().len(len).map(file)? };
        let ptr = m.as_ptr() as *mut u8;
        Ok(MapMemory {
            ptr,
            len,
            backing: Backing::Read(m),
        })
    }

    /// A map over a heap buffer (the simulated page cache).
    pub(crate) fn heap(buf: Arc<HeapBuf>, flush: FlushHook) -> MapMemory {
        MapMemory {
            ptr: buf.ptr,
            len: buf.len,
            backing: Backing::Heap { buf, flush },
        }
    }

    fn flush(&self, range: Range<usize>) -> io::Result<()> {
        let range = range.start.min(self.len)..range.end.min(self.len);
        if range.is_empty() {
            return Ok(());
        }
        match &self.backing {
            Backing::Mut(m) => m.flush_range(range.start, range.len()),
            Backing::Read(_) => Ok(()),
            Backing::Heap { flush, .. } => {
                let mut copy = vec![0u8; range.len()];
                // SAFETY: `range` lies within the buffer. Concurrent appends
                // write only above the flushed range of the same map (the
                // caller flushes what was committed), so these bytes are not
                // being written; this mirrors the kernel reading pages for
                // writeback.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.ptr.add(range.start),
                        copy.as_mut_ptr(),
                        range.len(),
                    )
                };
                flush(range.start as u64, &copy)
            }
        }
    }
}

/// A zeroed heap buffer of fixed length: the simulated page cache of one file.
pub(crate) struct HeapBuf {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain memory owned by `HeapBuf`; access is
// coordinated by `SharedMap` (for maps) and by the simulated file's lock (for
// `read_at`/`write_at`/snapshots).
unsafe impl Send for HeapBuf {}
// SAFETY: as above.
unsafe impl Sync for HeapBuf {}

impl std::fmt::Debug for HeapBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeapBuf").field("len", &self.len).finish()
    }
}

impl HeapBuf {
    /// Allocates `len` zero bytes.
    pub(crate) fn new(len: usize) -> HeapBuf {
        let b: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        let ptr = Box::into_raw(b) as *mut u8;
        HeapBuf { ptr, len }
    }

    /// Length in bytes.
    #[cfg(feature = "sim")]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Copies bytes out. Used by the simulated file system between operations.
    #[cfg(feature = "sim")]
    pub(crate) fn read(&self, pos: usize, out: &mut [u8]) {
        let end = pos.checked_add(out.len()).expect("overflow");
        assert!(end <= self.len, "HeapBuf read out of bounds");
        // SAFETY: bounds checked above. Racing with a concurrent append to
        // the same bytes can only happen in multi-threaded simulated power
        // cuts, where a torn value is exactly what a real page cache shows.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.add(pos), out.as_mut_ptr(), out.len()) }
    }

    /// Copies bytes in. Used by the simulated file system for `write_at`,
    /// which Spool never uses on a file that is mapped for appends.
    #[cfg(feature = "sim")]
    pub(crate) fn write(&self, pos: usize, data: &[u8]) {
        let end = pos.checked_add(data.len()).expect("overflow");
        assert!(end <= self.len, "HeapBuf write out of bounds");
        // SAFETY: bounds checked above; see `read` for concurrency.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(pos), data.len()) }
    }
}

impl Drop for HeapBuf {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` came from `Box::into_raw` of a boxed slice
        // of exactly `len` bytes in `new`, and are freed only here.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr, self.len,
            )));
        }
    }
}

/// A map shared by readers, with an optional single writer (see module docs).
pub(crate) struct SharedMap {
    mem: MapMemory,
    /// Start of the data area; `0..data_start` is the locked header area.
    data_start: usize,
    /// Bytes `data_start..committed` are immutable and readable.
    committed: AtomicUsize,
    header_lock: Mutex<()>,
}

impl std::fmt::Debug for SharedMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMap")
            .field("len", &self.mem.len)
            .field("committed", &self.committed())
            .finish()
    }
}

impl SharedMap {
    /// A map whose whole length is readable and never written (sealed files).
    pub(crate) fn read_only(mem: MapMemory) -> Arc<SharedMap> {
        let len = mem.len;
        Arc::new(SharedMap {
            mem,
            data_start: 0,
            committed: AtomicUsize::new(len),
            header_lock: Mutex::new(()),
        })
    }

    /// A writable map with a header area of `data_start` bytes and nothing
    /// committed yet; returns the map and its only writer.
    pub(crate) fn writable(mem: MapMemory, data_start: usize) -> (Arc<SharedMap>, MapWriter) {
        assert!(data_start <= mem.len, "header larger than the map");
        assert!(
            !matches!(mem.backing, Backing::Read(_)),
            "a read-only mapping cannot have a writer"
        );
        let map = Arc::new(SharedMap {
            mem,
            data_start,
            committed: AtomicUsize::new(data_start),
            header_lock: Mutex::new(()),
        });
        let writer = MapWriter { map: map.clone() };
        (map, writer)
    }

    /// Total length.
    pub(crate) fn len(&self) -> usize {
        self.mem.len
    }

    /// End of the committed (readable) data.
    pub(crate) fn committed(&self) -> usize {
        self.committed.load(Ordering::Acquire)
    }

    /// Borrows committed bytes, or `None` if the range is not entirely
    /// within `data_start..committed`.
    #[inline]
    pub(crate) fn get(&self, range: Range<usize>) -> Option<&[u8]> {
        if range.start < self.data_start || range.start > range.end {
            return None;
        }
        if range.end > self.committed.load(Ordering::Acquire) {
            return None;
        }
        // SAFETY: the range is inside `data_start..committed` (checked
        // above, and `committed <= len`), and committed bytes are never
        // written again (the writer asserts `pos >= committed`). The `Acquire`
        // load pairs with the writer's `Release` store, so the bytes are
        // initialised and visible. The memory lives as long as `self`.
        Some(unsafe { std::slice::from_raw_parts(self.mem.ptr.add(range.start), range.len()) })
    }

    /// Copies `out.len()` bytes of the header area starting at `pos`.
    pub(crate) fn read_header(&self, pos: usize, out: &mut [u8]) {
        assert!(
            pos + out.len() <= self.data_start,
            "outside the header area"
        );
        let _g = self.header_lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: within the header area (checked), which is only accessed
        // under `header_lock`.
        unsafe { std::ptr::copy_nonoverlapping(self.mem.ptr.add(pos), out.as_mut_ptr(), out.len()) }
    }

    /// Writes into the header area.
    pub(crate) fn write_header(&self, pos: usize, data: &[u8]) {
        assert!(
            pos + data.len() <= self.data_start,
            "outside the header area"
        );
        assert!(
            !matches!(self.mem.backing, Backing::Read(_)),
            "write to a read-only map"
        );
        let _g = self.header_lock.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: within the header area (checked), which is only accessed
        // under `header_lock`; the mapping is writable (checked).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.mem.ptr.add(pos), data.len()) }
    }

    /// Makes `range` durable (msync `MS_SYNC` for file maps).
    pub(crate) fn flush(&self, range: Range<usize>) -> io::Result<()> {
        self.mem.flush(range)
    }

    /// Tells the kernel whether faults in this map should read ahead
    /// (`MADV_NORMAL`) or fetch only the page touched (`MADV_RANDOM`): a
    /// recovery scan that reads a few records of a fresh segment would
    /// otherwise have each first fault read (and zero-fill) a large window.
    /// Only advice: for heap maps, or where the kernel lacks it, nothing
    /// happens.
    pub(crate) fn read_ahead(&self, on: bool) {
        let advice = if on {
            memmap2::Advice::Normal
        } else {
            memmap2::Advice::Random
        };
        let _ = match &self.mem.backing {
            Backing::Mut(m) => m.advise(advice),
            Backing::Read(m) => m.advise(advice),
            Backing::Heap { .. } => Ok(()),
        };
    }

    /// Faults `range` in for writing (`MADV_POPULATE_WRITE`), so that the
    /// writer, arriving there later, finds the pages mapped and writable
    /// instead of taking a page fault per 4 KiB page. The bytes are not
    /// changed. Only advice: where the kernel lacks it, and for heap or
    /// read-only maps, nothing happens.
    pub(crate) fn prefault(&self, range: Range<usize>) {
        let range = range.start.min(self.mem.len)..range.end.min(self.mem.len);
        if let Backing::Mut(m) = &self.mem.backing {
            if !range.is_empty() {
                let _ = m.advise_range(memmap2::Advice::PopulateWrite, range.start, range.len());
            }
        }
    }
}

/// The only writer of a [`SharedMap`]'s data area.
pub(crate) struct MapWriter {
    map: Arc<SharedMap>,
}

impl std::fmt::Debug for MapWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapWriter").field("map", &self.map).finish()
    }
}

impl MapWriter {
    /// The map written to.
    pub(crate) fn map(&self) -> &Arc<SharedMap> {
        &self.map
    }

    /// Mutable access to the uncommitted bytes `range`, which must lie at or
    /// above the committed end and inside the map.
    #[inline]
    pub(crate) fn slice_mut(&mut self, range: Range<usize>) -> &mut [u8] {
        let committed = self.map.committed.load(Ordering::Relaxed);
        assert!(
            range.start >= committed && range.start <= range.end && range.end <= self.map.mem.len,
            "write outside the uncommitted area: {range:?}, committed {committed}"
        );
        // SAFETY: the range is inside the map and at or above `committed`, so
        // no reader can borrow it (readers stop below `committed`), and this
        // writer is unique (not `Clone`, and borrowed mutably here). The
        // returned slice borrows `self` mutably, so no other slice of this
        // writer overlaps it.
        unsafe { std::slice::from_raw_parts_mut(self.map.mem.ptr.add(range.start), range.len()) }
    }

    /// Reads bytes of the data area that may not be committed yet (recovery
    /// scans the whole file before committing its valid prefix).
    pub(crate) fn read_uncommitted(&self, range: Range<usize>) -> &[u8] {
        assert!(
            range.start >= self.map.data_start
                && range.start <= range.end
                && range.end <= self.map.mem.len,
            "read outside the data area: {range:?}"
        );
        // SAFETY: inside the map (checked). Bytes above `committed` are only
        // written through `slice_mut`, which needs `&mut self` and so cannot
        // run while this shared borrow lives; bytes below are immutable.
        unsafe { std::slice::from_raw_parts(self.map.mem.ptr.add(range.start), range.len()) }
    }

    /// Makes `data_start..end` readable. `end` never decreases.
    #[inline]
    pub(crate) fn commit(&mut self, end: usize) {
        let old = self.map.committed.load(Ordering::Relaxed);
        assert!(
            end >= old && end <= self.map.mem.len,
            "commit {end} below {old} or past the map"
        );
        self.map.committed.store(end, Ordering::Release);
    }
}
