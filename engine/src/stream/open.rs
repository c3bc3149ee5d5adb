//! Opening a stream directory, and creating one atomically.

use super::StreamInner;
use crate::blob::Blobs;
use crate::consumer;
use crate::ctx::{random_u64, Ctx};
use crate::format::meta;
use crate::io::{self, EntryKind};
use crate::layout::{self, STREAMS_DIR, STREAM_META_FILE};
use crate::log::Bucket;
use crate::notify::Notify;
use crate::options::StreamConfig;
use crate::report::RecoveryReport;
use crate::{name, Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// Creates the stream `name` with `config` in `streams/`: built in a
/// temporary directory (meta, bucket directories, all synced), renamed into
/// place, `streams/` synced. After a crash it exists whole or not at all.
/// A stream directory already in place that the store does not hold was
/// renamed there by an earlier call that failed while opening it (say, with
/// no descriptor left for its first segment): it is opened.
pub(crate) fn create(
    ctx: &Arc<Ctx>,
    blobs: &Arc<Blobs>,
    name: &str,
    config: &StreamConfig,
) -> Result<StreamInner> {
    let vfs = &*ctx.vfs;
    let streams_dir = ctx.root.join(STREAMS_DIR);
    let dir = streams_dir.join(name);
    let io_err = |op, p: &Path| {
        let p = p.to_path_buf();
        move |e| Error::io(op, p, e)
    };
    let mut report = RecoveryReport::default();
    if vfs.kind(&dir).map_err(io_err("stat", &dir))? == Some(EntryKind::Dir) {
        if let Some(s) = open(ctx, blobs, name, &dir, &mut report)? {
            return Ok(s);
        }
    }
    // Opened before the stream is renamed into it: failing to open it
    // changes nothing.
    let parent = ctx.open_dir(&streams_dir)?;
    let tmp = streams_dir.join(layout::tmp_dir_name(name, random_u64()));
    vfs.create_dir(&tmp)
        .map_err(io_err("create directory", &tmp))?;
    let built = (|| {
        let (version, body) = config.encode_body()?;
        io::write_file_atomic(
            vfs,
            &tmp,
            STREAM_META_FILE,
            &meta::encode(meta::STREAM_META_MAGIC, version, &body),
        )?;
        let d = ctx.open_dir(&tmp)?;
        for p in 0..config.priorities {
            let b = tmp.join(layout::bucket_dir_name(p));
            vfs.create_dir(&b).map_err(io_err("create directory", &b))?;
        }
        d.sync()
    })();
    if built.is_err() {
        // Never renamed into place: it never existed (an open would remove
        // it too).
        let _ = io::remove_dir_all(vfs, &tmp);
    }
    built?;
    vfs.rename(&tmp, &dir).map_err(io_err("rename", &tmp))?;
    parent.sync()?;
    drop(parent);
    open(ctx, blobs, name, &dir, &mut report)?.ok_or_else(|| {
        Error::corrupt(
            dir.join(STREAM_META_FILE),
            0,
            "stream vanished after creation",
        )
    })
}

/// Opens one stream directory; `None` if it is not a stream (no meta file
/// and no bucket directories: someone else's directory).
pub(crate) fn open(
    ctx: &Arc<Ctx>,
    blobs: &Arc<Blobs>,
    name: &str,
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<Option<StreamInner>> {
    let vfs = &*ctx.vfs;
    let meta_path = dir.join(STREAM_META_FILE);
    let body = io::read_framed_versions(
        vfs,
        &meta_path,
        meta::STREAM_META_MAGIC,
        meta::STREAM_META_VERSION..=meta::STREAM_META_VERSION_2,
        meta::META_BODY_BYTES_MAX,
        "stream config",
    )?;
    let Some(body) = body else {
        let has_buckets = vfs
            .read_dir(dir)
            .map_err(|e| Error::io("list", dir, e))?
            .iter()
            .any(|e| e.kind == EntryKind::Dir && layout::parse_bucket_dir(&e.name).is_some());
        if has_buckets {
            return Err(Error::corrupt(&meta_path, 0, "stream config missing"));
        }
        return Ok(None);
    };
    let (version, body) = body;
    let config = StreamConfig::decode_body(version, &body).map_err(|e| {
        Error::corrupt(
            &meta_path,
            meta::BODY_OFFSET as u64,
            format!("stream config: {e}"),
        )
    })?;
    let mut buckets = Vec::with_capacity(config.priorities as usize);
    for p in 0..config.priorities {
        let bdir = dir.join(layout::bucket_dir_name(p));
        if vfs.kind(&bdir).map_err(|e| Error::io("stat", &bdir, e))? != Some(EntryKind::Dir) {
            return Err(Error::corrupt(&bdir, 0, "bucket directory missing"));
        }
        buckets.push(Bucket::open(ctx, name, p, &bdir, report)?);
    }
    // Loaded by the first send with an id (`dedup::Window::load`).
    let dedup = match crate::limits::micros_saturating(config.dedup_window) {
        0 => None,
        window_us => Some(Mutex::new(super::dedup::Window::new(window_us))),
    };
    let capacity = (config.capacity_bytes.is_some() || config.capacity_messages.is_some())
        .then(|| Mutex::new(()));
    let stream = StreamInner {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        config,
        buckets,
        ctx: ctx.clone(),
        notify: Notify::default(),
        consumers: RwLock::new(BTreeMap::new()),
        consumer_create: Mutex::new(()),
        retention: Mutex::new(()),
        files: Mutex::new(()),
        blobs: blobs.clone(),
        deleted: std::sync::atomic::AtomicBool::new(false),
        dedup,
        capacity,
    };
    // Consumers: every directory under `consumers/` with a valid name.
    let cdir = dir.join(layout::CONSUMERS_DIR);
    if vfs.kind(&cdir).map_err(|e| Error::io("stat", &cdir, e))? == Some(EntryKind::Dir) {
        let mut opened = BTreeMap::new();
        for e in vfs
            .read_dir(&cdir)
            .map_err(|e| Error::io("list", &cdir, e))?
        {
            if e.kind != EntryKind::Dir {
                continue;
            }
            let path = cdir.join(&e.name);
            if layout::is_tmp_dir(&e.name) {
                io::remove_dir_all(vfs, &path)?;
                vfs.sync_dir(&cdir)
                    .map_err(|e| Error::io("sync directory", &cdir, e))?;
                report.removed_incomplete_streams.push(path);
                continue;
            }
            if name::validate(&e.name).is_err() {
                continue;
            }
            let c = consumer::open(ctx, &stream, &e.name, &path)?;
            opened.insert(e.name.clone(), Arc::new(c));
        }
        stream.set_consumers(opened);
    }
    Ok(Some(stream))
}
