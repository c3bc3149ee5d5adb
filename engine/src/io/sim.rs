//! A simulated file system for crash tests (feature `sim`; not a stable API).
//!
//! It keeps, for every file, what the process sees (`live`) and what is on
//! the platter (`durable`), and for every directory its live and durable
//! entries. It can:
//!
//! - cut power ([`SimFs::power_cut`]): keep only durable bytes and entries,
//!   optionally plus a random subset of unsynced 4 KiB pages (some torn at
//!   512-byte sectors, some replaced by garbage) and of unsynced directories;
//! - crash at the N-th operation ([`SimFs::crash_at`]): the image at that
//!   moment is kept for [`SimFs::crashed_image`], and every later operation
//!   fails as if the process had died;
//! - fail the N-th operation with EIO or ENOSPC, once or forever
//!   ([`SimFs::fail_at`]);
//! - run out of space ([`SimFs::set_capacity`]);
//! - run out of descriptors ([`SimFs::set_descriptor_limit`]), as a process
//!   at its `RLIMIT_NOFILE` does;
//! - count operations, opens, mapped and read bytes ([`SimFs::stats`]).
//!
//! Memory maps are heap buffers shared by all maps of a file; `msync`
//! copies the flushed range to the durable image.

use super::map::{FlushHook, HeapBuf, MapMemory};
use super::{DirEntry, EntryKind, LockGuard, OpenMode, VDir, VFile, Vfs};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

const PAGE: usize = 4096;
const SECTOR: usize = 512;

/// Which error an injected fault produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// `EIO`.
    Eio,
    /// `ENOSPC`.
    Enospc,
}

/// What survives of unsynced data at a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutMode {
    /// Only synced bytes and directory entries.
    DropUnsynced,
    /// Synced data plus a random subset of unsynced pages (some torn at
    /// sectors, some garbage) and of unsynced directories, from this seed.
    RandomPages(u64),
}

/// Operation counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Operations performed (each counts toward `fail_at`/`crash_at`).
    pub ops: u64,
    /// Files opened.
    pub opens: u64,
    /// Bytes read with `read_at`.
    pub bytes_read: u64,
    /// Bytes mapped.
    pub bytes_mapped: u64,
    /// Syncs (file, directory and map flushes).
    pub syncs: u64,
}

#[derive(Debug)]
struct Fault {
    at: u64,
    kind: FaultKind,
    forever: bool,
}

type NodeId = u64;

#[derive(Debug)]
enum Node {
    Dir {
        live: BTreeMap<String, NodeId>,
        durable: BTreeMap<String, NodeId>,
    },
    File(Arc<FileData>),
    Other,
}

#[derive(Debug, Default)]
struct FileData {
    st: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    /// Live bytes while the file is not mapped.
    live: Vec<u8>,
    /// Live bytes once mapped (the length is then fixed).
    mapped: Option<Arc<HeapBuf>>,
    durable: Vec<u8>,
    /// Bytes reserved on the simulated disk.
    allocated: u64,
}

impl FileState {
    fn len(&self) -> usize {
        match &self.mapped {
            Some(b) => b.len(),
            None => self.live.len(),
        }
    }

    fn live_bytes(&self) -> Vec<u8> {
        match &self.mapped {
            Some(b) => {
                let mut v = vec![0u8; b.len()];
                b.read(0, &mut v);
                v
            }
            None => self.live.clone(),
        }
    }
}

#[derive(Debug)]
struct State {
    nodes: HashMap<NodeId, Node>,
    next_id: NodeId,
    stats: SimStats,
    faults: Vec<Fault>,
    crash_at: Option<(u64, CutMode)>,
    crashed: Option<Image>,
    dead: bool,
    locks: HashSet<PathBuf>,
    capacity: u64,
    used: u64,
    violations: Vec<String>,
    sync_delay: std::time::Duration,
    /// Open files, open directories and held locks.
    descriptors: u64,
    descriptor_limit: u64,
}

/// One directory of an image: its path and its entries (file content, or
/// `None` for a non-regular file).
type ImageDir = (PathBuf, Vec<(String, Option<Vec<u8>>)>);

/// A frozen durable image, from which a new [`SimFs`] starts.
#[derive(Debug, Clone)]
pub struct Image {
    dirs: Vec<ImageDir>,
}

/// The simulated file system. Clone it to share it; [`SimFs::power_cut`]
/// returns a new one holding what survived.
#[derive(Debug, Clone)]
pub struct SimFs {
    st: Arc<Mutex<State>>,
}

const ROOT: NodeId = 0;

impl Default for SimFs {
    fn default() -> Self {
        Self::new()
    }
}

fn err(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Eio => io::Error::from_raw_os_error(libc::EIO),
        FaultKind::Enospc => io::Error::from_raw_os_error(libc::ENOSPC),
    }
}

fn components(path: &Path) -> io::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(s) => out.push(
                s.to_str()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "non-UTF-8 path"))?
                    .to_string(),
            ),
        }
    }
    Ok(out)
}

impl SimFs {
    /// An empty file system with unlimited space.
    pub fn new() -> SimFs {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node::Dir {
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
        );
        SimFs {
            st: Arc::new(Mutex::new(State {
                nodes,
                next_id: 1,
                stats: SimStats::default(),
                faults: Vec::new(),
                crash_at: None,
                crashed: None,
                dead: false,
                locks: HashSet::new(),
                capacity: u64::MAX,
                used: 0,
                violations: Vec::new(),
                sync_delay: std::time::Duration::ZERO,
                descriptors: 0,
                descriptor_limit: u64::MAX,
            })),
        }
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails operation number `at` (counting from 1) with `kind`; with
    /// `forever`, every later operation too.
    pub fn fail_at(&self, at: u64, kind: FaultKind, forever: bool) {
        self.st().faults.push(Fault { at, kind, forever });
    }

    /// At operation number `at`, the power fails: the image at that moment
    /// is kept (see [`SimFs::crashed_image`]) and every operation from then
    /// on fails with EIO.
    pub fn crash_at(&self, at: u64, mode: CutMode) {
        self.st().crash_at = Some((at, mode));
    }

    /// A file system whose operation `fault` fails once with EIO and whose
    /// power fails at operation `cut` (`mode`): for tests of a program that
    /// carries on after a failed call (see [`fault_then_cut`]).
    pub fn failing_then_cut(fault: u64, cut: u64, mode: CutMode) -> SimFs {
        let fs = SimFs::new();
        fs.fail_at(fault, FaultKind::Eio, false);
        fs.crash_at(cut, mode);
        fs
    }

    /// The image taken by [`SimFs::crash_at`], if the crash happened.
    pub fn crashed_image(&self) -> Option<Image> {
        self.st().crashed.clone()
    }

    /// Sets how many bytes the simulated disk holds.
    pub fn set_capacity(&self, bytes: u64) {
        self.st().capacity = bytes;
    }

    /// Lets at most `n` descriptors be open at once (open files, open
    /// directories, the store lock), like `RLIMIT_NOFILE`: opening one more
    /// fails with `EMFILE`, and so does listing a directory, which needs one
    /// for a moment. Memory maps hold none (as real ones do once their file
    /// is closed).
    pub fn set_descriptor_limit(&self, n: u64) {
        self.st().descriptor_limit = n;
    }

    /// Descriptors open now (see [`SimFs::set_descriptor_limit`]).
    pub fn open_descriptors(&self) -> u64 {
        self.st().descriptors
    }

    /// Makes every sync (file, directory, map flush) take this long, like a
    /// real disk's flush, so that concurrent syncs overlap.
    pub fn set_sync_delay(&self, d: std::time::Duration) {
        self.st().sync_delay = d;
    }

    fn sync_pause(&self) {
        let d = self.st().sync_delay;
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SimStats {
        self.st().stats
    }

    /// Writes into mapped memory that reached regions never reserved with
    /// `allocate` (on a real disk: SIGBUS when full). Must stay empty.
    pub fn violations(&self) -> Vec<String> {
        self.st().violations.clone()
    }

    /// Cuts the power now: returns a new file system holding what survived.
    pub fn power_cut(&self, mode: CutMode) -> SimFs {
        let img = self.st().image(mode);
        SimFs::from_image(&img)
    }

    /// A file system holding `img`, all of it durable.
    pub fn from_image(img: &Image) -> SimFs {
        let fs = SimFs::new();
        {
            let mut st = fs.st();
            for (dir, entries) in &img.dirs {
                let parent = st.resolve_dir_create(dir);
                for (name, content) in entries {
                    let id = st.alloc();
                    match content {
                        Some(bytes) => {
                            let fd = FileData::default();
                            {
                                let mut f = fd.st.lock().unwrap_or_else(|e| e.into_inner());
                                f.live = bytes.clone();
                                f.durable = bytes.clone();
                                f.allocated = bytes.len() as u64;
                            }
                            st.used += bytes.len() as u64;
                            st.nodes.insert(id, Node::File(Arc::new(fd)));
                        }
                        None => {
                            st.nodes.insert(id, Node::Other);
                        }
                    }
                    st.link(parent, name, id, true);
                }
            }
        }
        fs
    }

    /// Creates a non-regular file (like a FIFO) at `path`, durable.
    pub fn create_special(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st();
        let (parent, name) = st.parent_of(path)?;
        let id = st.alloc();
        st.nodes.insert(id, Node::Other);
        st.link(parent, &name, id, true);
        Ok(())
    }

    /// Reads a whole file as the process sees it (tests).
    pub fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.st();
        let id = st.resolve(path)?;
        match st.nodes.get(&id) {
            Some(Node::File(f)) => Ok(f.st.lock().unwrap_or_else(|e| e.into_inner()).live_bytes()),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file")),
        }
    }

    /// Replaces a whole file's content, live and durable (tests that damage
    /// files). Fails if the file is mapped.
    pub fn write_file(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut st = self.st();
        let id = match st.resolve(path) {
            Ok(id) => id,
            Err(_) => {
                let (parent, name) = st.parent_of(path)?;
                let id = st.alloc();
                st.nodes
                    .insert(id, Node::File(Arc::new(FileData::default())));
                st.link(parent, &name, id, true);
                id
            }
        };
        match st.nodes.get(&id) {
            Some(Node::File(f)) => {
                let mut f = f.st.lock().unwrap_or_else(|e| e.into_inner());
                match &f.mapped {
                    // No map is alive any more: back to plain bytes.
                    Some(b) if Arc::strong_count(b) == 1 => f.mapped = None,
                    Some(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "file is mapped",
                        ))
                    }
                    None => {}
                }
                f.live = bytes.to_vec();
                f.durable = bytes.to_vec();
                f.allocated = f.allocated.max(bytes.len() as u64);
                Ok(())
            }
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a file")),
        }
    }

    /// Lists every file path (tests).
    pub fn files(&self) -> Vec<PathBuf> {
        let st = self.st();
        let mut out = Vec::new();
        st.walk(ROOT, PathBuf::from("/"), &mut |p, n| {
            if matches!(n, Node::File(_)) {
                out.push(p.to_path_buf());
            }
        });
        out
    }

    /// Counts an operation and applies faults. Called at the start of every
    /// operation.
    fn op(&self) -> io::Result<()> {
        let mut st = self.st();
        st.begin_op()
    }
}

impl State {
    fn alloc(&mut self) -> NodeId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn begin_op(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(err(FaultKind::Eio));
        }
        self.stats.ops += 1;
        let n = self.stats.ops;
        if let Some((at, mode)) = self.crash_at {
            if n >= at {
                let img = self.image(mode);
                self.crashed = Some(img);
                self.dead = true;
                return Err(err(FaultKind::Eio));
            }
        }
        for f in &self.faults {
            if f.at == n || (f.forever && n > f.at) {
                return Err(err(f.kind));
            }
        }
        Ok(())
    }

    /// Fails with `EMFILE` if no descriptor is left.
    fn descriptor_free(&self) -> io::Result<()> {
        if self.descriptors >= self.descriptor_limit {
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        Ok(())
    }

    fn link(&mut self, parent: NodeId, name: &str, id: NodeId, durable: bool) {
        if let Some(Node::Dir { live, durable: d }) = self.nodes.get_mut(&parent) {
            live.insert(name.to_string(), id);
            if durable {
                d.insert(name.to_string(), id);
            }
        }
    }

    fn resolve(&self, path: &Path) -> io::Result<NodeId> {
        let mut cur = ROOT;
        for c in components(path)? {
            match self.nodes.get(&cur) {
                Some(Node::Dir { live, .. }) => {
                    cur = *live
                        .get(&c)
                        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                }
                _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
            }
        }
        Ok(cur)
    }

    fn resolve_dir_create(&mut self, path: &Path) -> NodeId {
        let mut cur = ROOT;
        for c in components(path).unwrap_or_default() {
            let next = match self.nodes.get(&cur) {
                Some(Node::Dir { live, .. }) => live.get(&c).copied(),
                _ => None,
            };
            cur = match next {
                Some(id) => id,
                None => {
                    let id = self.alloc();
                    self.nodes.insert(
                        id,
                        Node::Dir {
                            live: BTreeMap::new(),
                            durable: BTreeMap::new(),
                        },
                    );
                    self.link(cur, &c, id, true);
                    id
                }
            };
        }
        cur
    }

    fn parent_of(&self, path: &Path) -> io::Result<(NodeId, String)> {
        let mut comps = components(path)?;
        let name = comps
            .pop()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let parent: PathBuf = comps.iter().collect::<PathBuf>();
        let pid = self.resolve(&Path::new("/").join(parent))?;
        match self.nodes.get(&pid) {
            Some(Node::Dir { .. }) => Ok((pid, name)),
            _ => Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
    }

    fn walk(&self, id: NodeId, path: PathBuf, f: &mut dyn FnMut(&Path, &Node)) {
        if let Some(n) = self.nodes.get(&id) {
            f(&path, n);
            if let Node::Dir { live, .. } = n {
                for (name, child) in live {
                    self.walk(*child, path.join(name), f);
                }
            }
        }
    }

    /// What survives a power cut now.
    fn image(&self, mode: CutMode) -> Image {
        let mut rng = match mode {
            CutMode::DropUnsynced => None,
            CutMode::RandomPages(seed) => Some(Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)),
        };
        let mut dirs = Vec::new();
        self.image_dir(ROOT, PathBuf::from("/"), &mut rng, &mut dirs);
        Image { dirs }
    }

    fn image_dir(&self, id: NodeId, path: PathBuf, rng: &mut Option<Rng>, out: &mut Vec<ImageDir>) {
        let Some(Node::Dir { live, durable }) = self.nodes.get(&id) else {
            return;
        };
        // A directory whose entries were not synced: on a journaling file
        // system its pending changes land all together or not at all.
        let adopt_live = live != durable && rng.as_mut().is_some_and(|r| r.chance(2));
        let entries = if adopt_live { live } else { durable };
        let mut files = Vec::new();
        let mut subdirs = Vec::new();
        for (name, child) in entries {
            match self.nodes.get(child) {
                Some(Node::Dir { .. }) => subdirs.push((name.clone(), *child)),
                Some(Node::File(f)) => {
                    let st = f.st.lock().unwrap_or_else(|e| e.into_inner());
                    files.push((name.clone(), Some(survivor(&st, rng))));
                }
                Some(Node::Other) => files.push((name.clone(), None)),
                None => {}
            }
        }
        out.push((path.clone(), files));
        for (name, child) in subdirs {
            self.image_dir(child, path.join(name), rng, out);
        }
    }
}

/// The bytes of a file that survive a cut.
fn survivor(st: &FileState, rng: &mut Option<Rng>) -> Vec<u8> {
    let Some(rng) = rng else {
        return st.durable.clone();
    };
    let live = st.live_bytes();
    let mut out = st.durable.clone();
    // The length: synced, or (metadata written back) the live one.
    if live.len() != out.len() && rng.chance(2) {
        out.resize(live.len(), 0);
    }
    let n = out.len().min(live.len());
    let mut p = 0;
    while p < n {
        let end = (p + PAGE).min(n);
        if live[p..end] != out[p..end] {
            match rng.below(8) {
                // The page was written back whole.
                0..=2 => out[p..end].copy_from_slice(&live[p..end]),
                // Torn: some sectors new, others old.
                3 | 4 => {
                    let mut s = p;
                    while s < end {
                        let se = (s + SECTOR).min(end);
                        if rng.chance(2) {
                            out[s..se].copy_from_slice(&live[s..se]);
                        }
                        s = se;
                    }
                }
                // A write tore: from its first changed byte to the end of
                // the sector, garbage. Bytes that did not change keep their
                // value (the disk model: sectors whose content does not
                // change are not damaged by rewriting them).
                5 => {
                    let s = p + rng.below(((end - p) / SECTOR).max(1) as u64) as usize * SECTOR;
                    let se = (s + SECTOR).min(end);
                    if let Some(first) = (s..se).find(|&i| live[i] != out[i]) {
                        // Bytes that were not changing keep their value.
                        for b in &mut out[first..se] {
                            *b = rng.next() as u8;
                        }
                    }
                }
                // Not written back.
                _ => {}
            }
        }
        p = end;
    }
    out
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
}

impl LockGuard for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut st = self.fs.st();
        st.locks.remove(&self.path);
        st.descriptors -= 1;
    }
}

/// An open directory: it stays the same directory if it is renamed, as an
/// open descriptor does.
#[derive(Debug)]
struct SimDir {
    fs: SimFs,
    id: NodeId,
}

impl VDir for SimDir {
    fn sync(&self) -> io::Result<()> {
        self.fs.sync_pause();
        let mut st = self.fs.st();
        st.begin_op()?;
        st.stats.syncs += 1;
        if let Some(Node::Dir { live, durable }) = st.nodes.get_mut(&self.id) {
            *durable = live.clone();
        }
        Ok(())
    }
}

impl Drop for SimDir {
    fn drop(&mut self) {
        self.fs.st().descriptors -= 1;
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        self.fs.st().descriptors -= 1;
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    data: Arc<FileData>,
    writable: bool,
}

impl Vfs for SimFs {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st();
        st.begin_op()?;
        let (parent, name) = st.parent_of(path)?;
        if let Some(Node::Dir { live, .. }) = st.nodes.get(&parent) {
            if live.contains_key(&name) {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
        }
        let id = st.alloc();
        st.nodes.insert(
            id,
            Node::Dir {
                live: BTreeMap::new(),
                durable: BTreeMap::new(),
            },
        );
        st.link(parent, &name, id, false);
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut st = self.st();
        st.begin_op()?;
        st.descriptor_free()?;
        let id = st.resolve(path)?;
        let Some(Node::Dir { live, .. }) = st.nodes.get(&id) else {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        };
        Ok(live
            .iter()
            .map(|(name, child)| DirEntry {
                name: name.clone(),
                kind: match st.nodes.get(child) {
                    Some(Node::Dir { .. }) => EntryKind::Dir,
                    Some(Node::File(_)) => EntryKind::File,
                    _ => EntryKind::Other,
                },
            })
            .collect())
    }

    fn kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        let mut st = self.st();
        st.begin_op()?;
        match st.resolve(path) {
            Ok(id) => Ok(Some(match st.nodes.get(&id) {
                Some(Node::Dir { .. }) => EntryKind::Dir,
                Some(Node::File(_)) => EntryKind::File,
                _ => EntryKind::Other,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn VFile>> {
        let mut st = self.st();
        st.begin_op()?;
        st.descriptor_free()?;
        st.stats.opens += 1;
        let data = match (mode, st.resolve(path)) {
            (OpenMode::CreateNew, Ok(_)) => {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists))
            }
            (OpenMode::CreateNew, Err(e)) if e.kind() == io::ErrorKind::NotFound => {
                let (parent, name) = st.parent_of(path)?;
                let id = st.alloc();
                let data = Arc::new(FileData::default());
                st.nodes.insert(id, Node::File(data.clone()));
                st.link(parent, &name, id, false);
                data
            }
            (_, Err(e)) => return Err(e),
            (_, Ok(id)) => match st.nodes.get(&id) {
                Some(Node::File(f)) => f.clone(),
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "not a regular file",
                    ))
                }
            },
        };
        st.descriptors += 1;
        Ok(Arc::new(SimFile {
            fs: self.clone(),
            data,
            writable: mode != OpenMode::ReadOnly,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.st();
        st.begin_op()?;
        let (fp, fname) = st.parent_of(from)?;
        let (tp, tname) = st.parent_of(to)?;
        // As rename(2): a directory replaces only an empty directory, a
        // file only a file.
        let from_dir = matches!(st.nodes.get(&st.resolve(from)?), Some(Node::Dir { .. }));
        if let Ok(target) = st.resolve(to) {
            match (from_dir, st.nodes.get(&target)) {
                (true, Some(Node::Dir { live, .. })) if !live.is_empty() => {
                    return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY))
                }
                (true, Some(Node::Dir { .. })) => {}
                (true, _) => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
                (false, Some(Node::Dir { .. })) => {
                    return Err(io::Error::from_raw_os_error(libc::EISDIR))
                }
                (false, _) => {}
            }
        }
        let id = match st.nodes.get_mut(&fp) {
            Some(Node::Dir { live, .. }) => live
                .remove(&fname)
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?,
            _ => return Err(io::Error::from(io::ErrorKind::NotFound)),
        };
        st.link(tp, &tname, id, false);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st();
        st.begin_op()?;
        let (p, name) = st.parent_of(path)?;
        let id = st.resolve(path)?;
        if matches!(st.nodes.get(&id), Some(Node::Dir { .. })) {
            return Err(io::Error::from_raw_os_error(libc::EISDIR));
        }
        if let Some(Node::Dir { live, .. }) = st.nodes.get_mut(&p) {
            live.remove(&name);
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st();
        st.begin_op()?;
        let (p, name) = st.parent_of(path)?;
        let id = st.resolve(path)?;
        match st.nodes.get(&id) {
            Some(Node::Dir { live, .. }) if live.is_empty() => {}
            Some(Node::Dir { .. }) => return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY)),
            _ => return Err(io::Error::from_raw_os_error(libc::ENOTDIR)),
        }
        if let Some(Node::Dir { live, .. }) = st.nodes.get_mut(&p) {
            live.remove(&name);
        }
        Ok(())
    }

    fn open_dir(&self, path: &Path) -> io::Result<Box<dyn VDir>> {
        let mut st = self.st();
        st.begin_op()?;
        st.descriptor_free()?;
        let id = st.resolve(path)?;
        if !matches!(st.nodes.get(&id), Some(Node::Dir { .. })) {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        st.descriptors += 1;
        Ok(Box::new(SimDir {
            fs: self.clone(),
            id,
        }))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        {
            let mut st = self.st();
            st.begin_op()?;
            st.descriptor_free()?;
            if st.resolve(path).is_err() {
                let (parent, name) = st.parent_of(path)?;
                let id = st.alloc();
                st.nodes
                    .insert(id, Node::File(Arc::new(FileData::default())));
                st.link(parent, &name, id, false);
            }
            let key = PathBuf::from("/").join(components(path)?.iter().collect::<PathBuf>());
            if !st.locks.insert(key.clone()) {
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            st.descriptors += 1;
            Ok(Box::new(SimLock {
                fs: self.clone(),
                path: key,
            }))
        }
    }

    /// A query, not an operation: not counted, never failed.
    fn lock_held(&self, path: &Path) -> io::Result<Option<bool>> {
        let st = self.st();
        let key = PathBuf::from("/").join(components(path)?.iter().collect::<PathBuf>());
        Ok(Some(st.locks.contains(&key)))
    }
}

impl SimFile {
    fn state(&self) -> MutexGuard<'_, FileState> {
        self.data.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EBADF))
        }
    }

    /// Reserves space up to `len` bytes of this file.
    fn reserve(st: &mut State, f: &mut FileState, len: u64) -> io::Result<()> {
        if len <= f.allocated {
            return Ok(());
        }
        let need = len - f.allocated;
        if st.used.saturating_add(need) > st.capacity {
            return Err(err(FaultKind::Enospc));
        }
        st.used += need;
        f.allocated = len;
        Ok(())
    }
}

impl VFile for SimFile {
    /// The simulated file system tracks no holes; it reports the 4 KiB
    /// pages holding a non-zero byte (a file system that found the other
    /// pages zero and freed them would report the same), so that callers'
    /// skipping of holes is exercised. Not an operation (never fails).
    fn data_ranges(&self, range: std::ops::Range<u64>) -> io::Result<Vec<std::ops::Range<u64>>> {
        const PAGE: u64 = 4096;
        let bytes = self.state().live_bytes();
        let end = range.end.min(bytes.len() as u64);
        let mut out: Vec<std::ops::Range<u64>> = Vec::new();
        let mut p = range.start;
        while p < end {
            let q = ((p / PAGE + 1) * PAGE).min(end);
            if bytes[p as usize..q as usize].iter().any(|&b| b != 0) {
                match out.last_mut() {
                    Some(r) if r.end == p => r.end = q,
                    _ => out.push(p..q),
                }
            }
            p = q;
        }
        Ok(out)
    }

    fn len(&self) -> io::Result<u64> {
        self.fs.op()?;
        Ok(self.state().len() as u64)
    }

    /// The bytes reserved for the file (by `allocate` and writes). Not an
    /// operation (never fails).
    fn allocated_bytes(&self) -> io::Result<Option<u64>> {
        Ok(Some(self.state().allocated))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.op()?;
        self.check_writable()?;
        let mut f = self.state();
        if f.mapped.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "resizing a mapped file",
            ));
        }
        f.live.resize(len as usize, 0);
        Ok(())
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.fs.op()?;
        self.check_writable()?;
        let mut st = self.fs.st();
        let mut f = self.state();
        Self::reserve(&mut st, &mut f, len)?;
        if (f.len() as u64) < len {
            if f.mapped.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "growing a mapped file",
                ));
            }
            f.live.resize(len as usize, 0);
        }
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.fs.op()?;
        let f = self.state();
        let len = f.len() as u64;
        if pos >= len {
            return Ok(0);
        }
        let n = buf.len().min((len - pos) as usize);
        match &f.mapped {
            Some(b) => b.read(pos as usize, &mut buf[..n]),
            None => buf[..n].copy_from_slice(&f.live[pos as usize..pos as usize + n]),
        }
        drop(f);
        self.fs.st().stats.bytes_read += n as u64;
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        self.fs.op()?;
        self.check_writable()?;
        let mut st = self.fs.st();
        let mut f = self.state();
        let end = pos + buf.len() as u64;
        Self::reserve(&mut st, &mut f, end)?;
        match &f.mapped {
            Some(b) => {
                if end as usize > b.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "growing a mapped file",
                    ));
                }
                b.write(pos as usize, buf);
            }
            None => {
                if f.live.len() < end as usize {
                    f.live.resize(end as usize, 0);
                }
                f.live[pos as usize..end as usize].copy_from_slice(buf);
            }
        }
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        self.fs.op()?;
        self.fs.sync_pause();
        self.fs.st().stats.syncs += 1;
        let mut f = self.state();
        f.durable = f.live_bytes();
        Ok(())
    }

    fn map_mut(&self, len: u64) -> io::Result<MapMemory> {
        self.fs.op()?;
        self.check_writable()?;
        self.map(len)
    }

    fn map_read(&self, len: u64) -> io::Result<MapMemory> {
        self.fs.op()?;
        self.map(len)
    }
}

impl SimFile {
    fn map(&self, len: u64) -> io::Result<MapMemory> {
        let buf = {
            let mut f = self.state();
            if (f.len() as u64) < len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "map past the end of the file",
                ));
            }
            match &f.mapped {
                Some(b) => b.clone(),
                None => {
                    let b = Arc::new(HeapBuf::new(f.live.len()));
                    b.write(0, &f.live);
                    f.live = Vec::new();
                    f.mapped = Some(b.clone());
                    b
                }
            }
        };
        self.fs.st().stats.bytes_mapped += len;
        let fs = self.fs.clone();
        let data = self.data.clone();
        let hook: FlushHook = Arc::new(move |pos: u64, bytes: &[u8]| {
            fs.op()?;
            fs.sync_pause();
            // Lock order everywhere: file system state, then file state.
            let mut st = fs.st();
            st.stats.syncs += 1;
            let mut f = data.st.lock().unwrap_or_else(|e| e.into_inner());
            let end = pos as usize + bytes.len();
            if let Some(i) = bytes.iter().rposition(|&b| b != 0) {
                let last = pos + i as u64 + 1;
                if last > f.allocated {
                    // Real pages past the reservation may be unbacked: a
                    // write there raises SIGBUS when the disk is full.
                    st.violations.push(format!(
                        "mapped write up to byte {last} past the reserved {} bytes",
                        f.allocated
                    ));
                }
            }
            if f.durable.len() < end {
                f.durable.resize(end, 0);
            }
            f.durable[pos as usize..end].copy_from_slice(bytes);
            Ok(())
        });
        // The map covers the requested prefix; the buffer is the file.
        if len as usize != buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the simulated file system maps whole files only",
            ));
        }
        Ok(MapMemory::heap(buf, hook))
    }
}

/// One step of a workload in a carry-on fault test: with `carry_on`, an
/// error ends only this step (`Ok(None)`), as in a program that goes on
/// after a failed call; without, the error is returned (and `?` ends the
/// workload).
pub fn step<T>(carry_on: bool, result: crate::Result<T>) -> crate::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(_) if carry_on => Ok(None),
        Err(e) => Err(e),
    }
}

/// Calls `f`, and with `carry_on` once more if it failed: a program that
/// retries a failed call.
pub fn retry<T>(carry_on: bool, f: impl Fn() -> crate::Result<T>) -> crate::Result<T> {
    match f() {
        Err(_) if carry_on => f(),
        r => r,
    }
}

/// The (fault, cut, damage) points of a carry-on fault test of a workload
/// of `total` operations: a fault at every operation `n`, and power cuts at
/// every `step`-th of the `span` operations after it, each either dropping
/// all unsynced data or keeping random unsynced pages. Use with
/// [`SimFs::failing_then_cut`].
pub fn fault_then_cut(
    total: u64,
    span: u64,
    step: usize,
) -> impl Iterator<Item = (u64, u64, CutMode)> {
    (1..=total).flat_map(move |n| {
        (n + 1..=n + span).step_by(step).flat_map(move |m| {
            [CutMode::DropUnsynced, CutMode::RandomPages(n * 1000 + m)]
                .into_iter()
                .map(move |mode| (n, m, mode))
        })
    })
}
