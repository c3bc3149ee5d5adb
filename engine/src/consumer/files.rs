//! A consumer's files: creating its directory atomically, opening it
//! (configuration, checkpoint, journal replay), and rotating to a new
//! checkpoint and journal.

use super::journal::{self, Journal};
use super::replay;
use super::state::BucketCheckpoint;
use super::{CheckpointBody, ConsumerConfig, ConsumerInner, HotConfig, StartAt, State};
use crate::ctx::{random_u64, Ctx};
use crate::format::meta;
use crate::group_commit::GroupCommit;
use crate::io::{self, EntryKind};
use crate::layout;
use crate::stream::StreamInner;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

/// Writes the checkpoint of generation `body.generation`, creates its
/// journal of `bytes` bytes (or, if the disk has no room for that, of
/// [`journal::first_bytes`], or `min` if that is more), both in the format
/// of journal `version`, removes the previous journal. Returns the new
/// journal and the logical position where it starts. On an error the store
/// is poisoned if the rotation may have taken effect (see
/// [`journal::install_checkpoint`]); otherwise nothing changed: the old
/// checkpoint and journal stand, and the files made for the new ones are
/// removed.
pub(super) fn rotate_files(
    ctx: &Ctx,
    dir: &Path,
    body: &CheckpointBody,
    old: &Path,
    logical_end: u64,
    (bytes, min): (u64, u64),
    version: u32,
) -> Result<(Journal, u64)> {
    // Both new files are synced, renamed into place, and made durable by one
    // directory sync. Whichever renames a power cut keeps, open finds a
    // consistent pair: the checkpoint's generation picks the journal, and a
    // journal of another generation is stale (removed at open). That also
    // covers the old journal coming back: its removal needs no sync.
    let encoded = body.encode(journal::checkpoint_version(version))?;
    // The directory is opened before anything is renamed into it: failing
    // to open it (no descriptor left) must come before the point where a
    // failure poisons.
    let d = ctx.open_dir(dir)?;
    let staged =
        match journal::stage_checkpoint(ctx, dir, &encoded, journal::checkpoint_version(version)) {
            Ok(t) => t,
            Err(e) => {
                // A partial temporary file holds space a full disk needs.
                let _ = ctx
                    .vfs
                    .remove_file(&dir.join(layout::tmp_file_name(layout::CHECKPOINT_FILE)));
                return Err(e);
            }
        };
    let first = journal::first_bytes(ctx.opts.consumer_journal_bytes).max(min);
    let created = match Journal::create(ctx, dir, body.generation, bytes, version) {
        Err(Error::DiskFull { .. }) if bytes > first => {
            Journal::create(ctx, dir, body.generation, first, version)
        }
        r => r,
    };
    let j = match created {
        Ok(j) => j,
        Err(e) => {
            let _ = ctx.vfs.remove_file(&staged);
            return Err(e);
        }
    };
    // Once an open may find the new checkpoint, it takes the old journal
    // for stale: acks written there after a failed install would be lost,
    // so a failed install poisons the store.
    journal::install_checkpoint(ctx, &d, dir, &staged)?;
    // The rotation is durable; the old journal is stale whatever happens to
    // it now (an open removes a leftover), so a failed removal is no error.
    let _ = ctx.vfs.remove_file(old);
    let start = logical_end + j.written();
    Ok((j, start))
}

/// Creates a consumer directory atomically (temporary directory, renamed);
/// returns it, and whether it is new: `false` if an earlier call of this
/// process renamed it into place and then failed (the caller opens it, and
/// `config` was not written).
pub(crate) fn create(
    ctx: &Arc<Ctx>,
    stream: &StreamInner,
    name: &str,
    config: &ConsumerConfig,
) -> Result<(PathBuf, bool)> {
    config.validate()?;
    let vfs = &*ctx.vfs;
    let parent = stream.dir().join(layout::CONSUMERS_DIR);
    if vfs
        .kind(&parent)
        .map_err(|e| Error::io("stat", &parent, e))?
        .is_none()
    {
        let d = ctx.open_dir(stream.dir())?;
        vfs.create_dir(&parent)
            .map_err(|e| Error::io("create directory", &parent, e))?;
        d.sync()?;
    }
    let dir = parent.join(name);
    if vfs.kind(&dir).map_err(|e| Error::io("stat", &dir, e))? == Some(EntryKind::Dir) {
        // Renamed into place (durably) by an earlier call that failed
        // after it, while opening the consumer: the consumer exists.
        return Ok((dir, false));
    }
    // Opened before the consumer's directory is renamed into it.
    let d = ctx.open_dir(&parent)?;
    let tmp = parent.join(layout::tmp_dir_name(name, random_u64()));
    vfs.create_dir(&tmp)
        .map_err(|e| Error::io("create directory", &tmp, e))?;
    let built = build_tmp(ctx, stream, &tmp, config);
    if built.is_err() {
        // Not renamed into place: it never existed. (An open removes a
        // leftover too.)
        let _ = io::remove_dir_all(vfs, &tmp);
    }
    built?;
    vfs.rename(&tmp, &dir)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    d.sync()?;
    Ok((dir, true))
}

/// Writes a new consumer's configuration and first checkpoint into its
/// temporary directory `tmp`, durably.
fn build_tmp(ctx: &Ctx, stream: &StreamInner, tmp: &Path, config: &ConsumerConfig) -> Result<()> {
    write_config(ctx, tmp, config)?;
    let buckets = (0..stream.priorities())
        .map(|p| {
            let start = start_offset(stream, p, config.start)?;
            Ok(BucketCheckpoint {
                floor: start,
                next: start,
                ..BucketCheckpoint::default()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let body = CheckpointBody {
        generation: 1,
        buckets,
        ..CheckpointBody::default()
    };
    let bytes = body.encode(meta::CHECKPOINT_VERSION)?;
    journal::write_checkpoint(ctx, tmp, &bytes)?;
    ctx.sync_dir(tmp)
}

pub(super) fn start_offset(stream: &StreamInner, priority: u8, start: StartAt) -> Result<u64> {
    let log = stream.log_range(priority);
    let (first, end) = (log.start, log.end);
    Ok(match start {
        StartAt::Earliest => first,
        StartAt::Latest => end,
        StartAt::Offset(o) => o.clamp(first, end),
        StartAt::TimestampUs(t) => {
            // Timestamps never decrease within a bucket: binary search.
            let (mut lo, mut hi) = (first, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let ts = match stream.read_raw(priority, mid) {
                    Ok(Some(r)) => r.timestamp_us(),
                    Ok(None) => u64::MAX,
                    Err(Error::OffsetNotRetained { .. }) => 0,
                    Err(e) => return Err(e),
                };
                if ts < t {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            lo
        }
    })
}

fn write_config(ctx: &Ctx, dir: &Path, config: &ConsumerConfig) -> Result<()> {
    let body = postcard::to_allocvec(config).map_err(|e| Error::encode("consumer config", e))?;
    io::write_file_atomic(
        &*ctx.vfs,
        dir,
        layout::CONSUMER_CONFIG_FILE,
        &meta::encode(
            meta::CONSUMER_CONFIG_MAGIC,
            meta::CONSUMER_CONFIG_VERSION,
            &body,
        ),
    )
}

/// Rewrites the configuration of an existing consumer.
pub(crate) fn update_config(inner: &ConsumerInner, config: &ConsumerConfig) -> Result<()> {
    config.validate()?;
    // Lock order: state, then config (the one place that holds both).
    let mut st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    let mut g = inner.config.write().unwrap_or_else(|e| e.into_inner());
    if *g == *config {
        return Ok(());
    }
    write_config(&inner.ctx, &inner.dir, config)?;
    *g = config.clone();
    st.hot = HotConfig::of(config);
    Ok(())
}

/// Opens a consumer directory: configuration, checkpoint, journal replay,
/// clamping to the log. Nothing is written: the first journaled change
/// starts a new generation.
pub(crate) fn open(
    ctx: &Arc<Ctx>,
    stream: &StreamInner,
    name: &str,
    dir: &Path,
) -> Result<ConsumerInner> {
    let vfs = &*ctx.vfs;
    let cfg_path = dir.join(layout::CONSUMER_CONFIG_FILE);
    let body = io::read_framed(
        vfs,
        &cfg_path,
        meta::CONSUMER_CONFIG_MAGIC,
        meta::CONSUMER_CONFIG_VERSION,
        meta::META_BODY_BYTES_MAX,
        "consumer config",
    )?
    .ok_or_else(|| Error::corrupt(&cfg_path, 0, "consumer config missing"))?;
    let at_body = meta::BODY_OFFSET as u64;
    let config: ConsumerConfig = postcard::from_bytes(&body)
        .map_err(|e| Error::corrupt(&cfg_path, at_body, format!("consumer config: {e}")))?;
    config
        .validate()
        .map_err(|e| Error::corrupt(&cfg_path, at_body, e.to_string()))?;

    let ckpt_path = dir.join(layout::CHECKPOINT_FILE);
    let (version, body) = journal::read_checkpoint(ctx, dir)?
        .ok_or_else(|| Error::corrupt(&ckpt_path, 0, "consumer checkpoint missing"))?;
    let ckpt = CheckpointBody::decode(version, &body)
        .map_err(|e| Error::corrupt(&ckpt_path, at_body, format!("consumer checkpoint: {e}")))?;
    let priorities = usize::from(stream.priorities());
    if ckpt.buckets.len() != priorities {
        return Err(Error::corrupt(
            &ckpt_path,
            at_body,
            "checkpoint has the wrong number of priority levels",
        ));
    }
    // Replay the journal of the checkpoint's generation; others are stale.
    let mut stale = Vec::new();
    for e in vfs.read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        if e.kind != EntryKind::File {
            continue;
        }
        if let Some(g) = layout::parse_journal_name(&e.name) {
            if g != ckpt.generation {
                stale.push(dir.join(&e.name));
            }
        } else if layout::is_tmp_file(&e.name) {
            stale.push(dir.join(&e.name));
        }
    }
    let jpath = dir.join(layout::journal_file_name(ckpt.generation));
    let entries = match journal::replay(ctx, &jpath)? {
        Some((g, entries)) if g == ckpt.generation => entries,
        _ => Vec::new(),
    };
    let logs: Vec<_> = (0..stream.priorities())
        .map(|p| stream.log_range(p))
        .collect();
    let replay::Resumed {
        buckets,
        redelivered,
        dead_lettered,
        skipped,
        expired,
    } = replay::resume(&ckpt, &entries, &logs);
    // Stale files go: a journal of generation `g + 1` left by a rotation
    // that a crash cut short must not be confused with the one the first
    // rotation creates. Their removal needs no sync: a stale file that comes
    // back after a power cut is as stale as before.
    for s in stale {
        match vfs.remove_file(&s) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &s, e)),
        }
    }
    // The journal of generation `g` is never appended to again (its tail
    // may be torn), but no new generation is started here: the checkpoint
    // and journal `g` stand and give the state replayed from them at every
    // open until something must be journaled, which starts generation
    // `g + 1` first (see `Consumer::make_room`). So an open writes and
    // syncs nothing, and works on a full disk.
    let journal = Journal::none(jpath, ckpt.generation);
    let (base, checkpointed) = (0, &ckpt);
    let checkpointed_floors = checkpointed
        .buckets
        .iter()
        .map(|b| AtomicU64::new(b.floor))
        .collect();
    let map = journal.map().clone();
    let journal_path: Arc<Path> = Arc::from(journal.path.as_path());
    let logical_base = base - journal.written();
    Ok(ConsumerInner {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        ctx: ctx.clone(),
        state: Mutex::new(State {
            buckets,
            journal,
            logical_base,
            redelivered,
            dead_lettered,
            skipped,
            expired,
            groups: super::state::groups::Groups::default(),
            higher_streak: 0,
            nack_reasons: HashMap::new(),
            hot: HotConfig::of(&config),
            segments: vec![None; priorities],
            disk_full_since: None,
            version_2: false,
            seek_lease_floor: 0,
            version_3: false,
        }),
        config: RwLock::new(config),
        commit: GroupCommit::new(base),
        current: RwLock::new((map, logical_base, journal_path)),
        next_lease: AtomicU64::new(1),
        checkpointed_floors,
        deleted: std::sync::atomic::AtomicBool::new(false),
    })
}

/// Deletes the consumer `inner` of `stream` (already out of the stream's
/// list): marks it deleted under its state lock (no call of a handle still
/// held is in progress then, and none writes after), renames its directory
/// to a temporary name and syncs `consumers/` (the durable step: an open
/// after a crash removes a temporary directory it finds), then removes the
/// files. If the rename fails, nothing changed and the mark is undone.
pub(crate) fn delete(ctx: &Ctx, inner: &ConsumerInner) -> Result<()> {
    let _st = inner.state.lock().unwrap_or_else(|e| e.into_inner());
    ctx.check()?;
    let parent = inner
        .dir
        .parent()
        .ok_or_else(|| Error::Internal("a consumer directory without a parent".into()))?;
    let d = ctx.open_dir(parent)?;
    let tmp = parent.join(layout::tmp_dir_name(&inner.name, random_u64()));
    inner
        .deleted
        .store(true, std::sync::atomic::Ordering::Release);
    if let Err(e) = ctx.vfs.rename(&inner.dir, &tmp) {
        inner
            .deleted
            .store(false, std::sync::atomic::Ordering::Release);
        return Err(Error::io("rename", &inner.dir, e));
    }
    d.sync()?;
    // The consumer is gone; what is left is the files of a name no one
    // uses (the next open removes them if this does not).
    if io::remove_dir_all(&*ctx.vfs, &tmp).is_ok() {
        let _ = d.sync();
    }
    Ok(())
}
