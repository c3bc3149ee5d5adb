//! What every part of an open store shares: the file system, the options and
//! the poison flag.

use crate::io::{LockGuard, Vfs};
use crate::options::Options;
use crate::{Error, Result};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Shared state of one open store.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) vfs: Arc<dyn Vfs>,
    pub(crate) opts: Options,
    pub(crate) root: PathBuf,
    poisoned: AtomicBool,
    /// Held while anything of the store is alive: streams keep the store
    /// locked even after the `Store` handle is dropped.
    _lock: Box<dyn LockGuard>,
}

impl Ctx {
    pub(crate) fn new(
        vfs: Arc<dyn Vfs>,
        opts: Options,
        root: PathBuf,
        lock: Box<dyn LockGuard>,
    ) -> Ctx {
        Ctx {
            vfs,
            opts,
            root,
            poisoned: AtomicBool::new(false),
            _lock: lock,
        }
    }

    /// Fails with [`Error::Poisoned`] once a sync has failed.
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        Ok(())
    }

    /// Marks the store poisoned: after a failed sync the kernel may have
    /// dropped dirty pages, so nothing may be acknowledged any more.
    pub(crate) fn poison(&self) {
        self.poisoned.store(true, Ordering::Release);
    }

    /// Whether the store is poisoned.
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        // Plain 64-bit arithmetic (`as_micros` works in 128 bits).
        Ok(d) => d.as_secs() * 1_000_000 + u64::from(d.subsec_micros()),
        Err(_) => 0,
    }
}

/// A random 64-bit id (segment ids).
pub(crate) fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source: fall back to time and address bits. Ids only
        // need to differ between segments of one store.
        let t = now_us();
        let a = &b as *const _ as u64;
        return t.rotate_left(17) ^ a ^ 0x9e37_79b9_7f4a_7c15;
    }
    u64::from_le_bytes(b)
}
