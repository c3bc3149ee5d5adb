//! Goal: every event of `spool::events` is emitted when its cause happens,
//! with the fields its table names, and nothing is emitted per message.
//! Method: a collecting `tracing` subscriber (thread-local, so tests running
//! beside each other do not see each other's events) around workloads on
//! the simulated file system that provoke each event: a power cut that
//! leaves a torn tail, retention, a dead letter, an injected EIO on a sync,
//! a sync made slow by the simulation, a consumer journal rotation.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{events, ConsumerConfig, Durability, Message, Store};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Metadata, Subscriber};

/// One event as the subscriber saw it.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    level: Level,
    message: String,
    fields: BTreeMap<String, String>,
}

impl Seen {
    fn field(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("event {:?} has no field {name}: {self:?}", self.message))
    }

    fn u64(&self, name: &str) -> u64 {
        self.field(name)
            .parse()
            .unwrap_or_else(|_| panic!("field {name} is not a number: {self:?}"))
    }
}

/// A subscriber that keeps every event (no spans).
#[derive(Clone, Default)]
struct Collector {
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct Fields<'a> {
    message: &'a mut String,
    fields: &'a mut BTreeMap<String, String>,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.fields.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            *self.message = v;
        } else {
            self.fields.insert(field.name().into(), v);
        }
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut seen = Seen {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            message: String::new(),
            fields: BTreeMap::new(),
        };
        event.record(&mut Fields {
            message: &mut seen.message,
            fields: &mut seen.fields,
        });
        self.seen.lock().unwrap().push(seen);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Collector {
    /// Runs `f` with this subscriber as the thread's default.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        tracing::subscriber::with_default(self.clone(), f)
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// The events of `target` with `message`.
fn named<'a>(seen: &'a [Seen], target: &str, message: &str) -> Vec<&'a Seen> {
    seen.iter()
        .filter(|e| e.target == target && e.message == message)
        .collect()
}

#[test]
fn a_torn_tail_after_a_power_cut_is_a_warning_with_its_place_and_size() {
    let c = Collector::default();
    // Unsynced sends, then a power cut keeping random unsynced pages: some
    // seed leaves bytes past the last valid record.
    for seed in 0..64 {
        let fs = SimFs::new();
        let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
        let s = store.stream("orders").unwrap();
        for i in 0..5u32 {
            s.send(format!("durable {i}").as_bytes()).unwrap();
        }
        store.sync().unwrap();
        for _ in 0..4 {
            s.send(&[0xEE; 3000]).unwrap();
        }
        let cut = fs.power_cut(CutMode::RandomPages(seed));
        drop(s);
        drop(store);
        let store = c.run(|| Store::open("/db", sim::options(&cut, Durability::Never)).unwrap());
        let seen = c.take();
        let report = store.recovery_report().clone();
        let opened = named(&seen, events::RECOVERY, "store opened");
        assert_eq!(opened.len(), 1, "{seen:?}");
        assert_eq!(opened[0].level, Level::INFO);
        assert_eq!(opened[0].field("path"), "/db");
        assert_eq!(opened[0].u64("streams"), 1);
        assert_eq!(opened[0].u64("torn_tails"), report.torn_tails.len() as u64);
        opened[0].u64("duration_us");
        let Some(t) = report.torn_tails.first() else {
            assert!(named(&seen, events::RECOVERY, "torn tail cut").is_empty());
            continue;
        };
        let torn = named(&seen, events::RECOVERY, "torn tail cut");
        assert_eq!(torn.len(), 1, "{seen:?}");
        let e = torn[0];
        assert_eq!(e.level, Level::WARN);
        assert_eq!(e.field("stream"), "orders");
        assert_eq!(e.u64("priority"), 0);
        assert_eq!(e.field("segment"), t.segment.display().to_string());
        assert_eq!(e.u64("position"), t.position);
        assert_eq!(e.u64("bytes"), t.bytes);
        assert!(e.u64("bytes") > 0);
        assert_eq!(e.u64("scattered_bytes"), t.scattered_bytes);
        assert_eq!(e.u64("next_offset"), t.first_lost_offset);
        assert!(e.u64("next_offset") >= 5, "{e:?}");
        assert_eq!(e.field("quarantine"), t.quarantine.display().to_string());
        // The summary comes after the findings.
        let order: Vec<&str> = seen.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(order.last(), Some(&"store opened"), "{order:?}");
        // A clean reopen reports nothing but the open.
        drop(store);
        let store = c.run(|| Store::open("/db", sim::options(&cut, Durability::Never)).unwrap());
        let seen = c.take();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].u64("torn_tails"), 0);
        drop(store);
        return;
    }
    panic!("no seed left a torn tail");
}

#[test]
fn retention_reports_the_segments_it_deleted() {
    let c = Collector::default();
    let fs = SimFs::new();
    let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
    let s = store.stream("logs").unwrap();
    let consumer = s.consumer("reader").unwrap();
    for _ in 0..200 {
        s.send(&[7u8; 1000]).unwrap();
    }
    assert!(s.stats().buckets[0].segments > 2);
    let d = c.run(|| consumer.receive_batch(150, Duration::ZERO).unwrap());
    consumer.ack_up_to(0, d.last().unwrap().offset()).unwrap();
    drop(d);
    // Sends and acks emitted nothing.
    let quiet: Vec<Seen> = c.take();
    assert!(
        quiet.iter().all(|e| e.target == events::CONSUMER),
        "{quiet:?}"
    );
    let freed = c.run(|| s.apply_retention().unwrap());
    assert!(freed > 0);
    let seen = c.take();
    let deleted = named(&seen, events::RETENTION, "segments deleted");
    assert_eq!(deleted.len(), 1, "{seen:?}");
    let e = deleted[0];
    assert_eq!(e.level, Level::INFO);
    assert_eq!(e.field("stream"), "logs");
    assert_eq!(e.u64("priority"), 0);
    assert_eq!(e.u64("bytes"), freed);
    let low = s.stats().buckets[0].first_offset;
    assert!(low > 0 && low <= 150, "{low}");
    assert_eq!(e.u64("low_water"), low);
    // Every sealed segment below the new first offset went: 64 KiB
    // segments of 1 KiB messages hold about 60 each.
    let segments = e.u64("segments");
    assert!(segments >= 1 && segments <= low / 50, "{e:?}");
    // Nothing left to delete: no event.
    c.run(|| s.apply_retention().unwrap());
    assert!(c.take().is_empty());
}

#[test]
fn a_dead_letter_is_a_warning_naming_the_message_and_its_new_stream() {
    let c = Collector::default();
    let fs = SimFs::new();
    let store = Store::open("/db", sim::options(&fs, Durability::Always)).unwrap();
    let jobs = store.stream("jobs").unwrap();
    for i in 0..3u32 {
        jobs.send_message(Message::new(format!("job {i}").as_bytes()))
            .unwrap();
    }
    let worker = jobs
        .consumer_with(
            "worker",
            ConsumerConfig::default()
                .max_deliveries(2)
                .dead_letter("jobs.dead"),
        )
        .unwrap();
    c.run(|| {
        // Offset 0 fails twice, with a reason the second time.
        let d = worker.try_receive().unwrap().unwrap();
        assert_eq!(d.offset(), 0);
        d.nack().unwrap();
        let d = worker.try_receive().unwrap().unwrap();
        assert_eq!((d.offset(), d.attempt()), (0, 2));
        d.nack_with(None, Some("bad input")).unwrap();
        // The third delivery moves it; offset 1 comes instead.
        let d = worker.try_receive().unwrap().unwrap();
        assert_eq!(d.offset(), 1);
        d.ack().unwrap();
    });
    let seen = c.take();
    let dead = named(&seen, events::DEAD_LETTER, "message dead-lettered");
    assert_eq!(dead.len(), 1, "{seen:?}");
    let e = dead[0];
    assert_eq!(e.level, Level::WARN);
    assert_eq!(e.field("stream"), "jobs");
    assert_eq!(e.field("consumer"), "worker");
    assert_eq!(e.u64("priority"), 0);
    assert_eq!(e.u64("offset"), 0);
    assert_eq!(e.u64("attempts"), 2);
    assert_eq!(e.field("reason"), "bad input");
    assert_eq!(e.field("dead_letter_stream"), "jobs.dead");
    assert_eq!(worker.stats().dead_lettered, 1);
    // Without a dead-letter stream the message is dropped: the event says so
    // with an empty stream name.
    let solo = jobs
        .consumer_with("solo", ConsumerConfig::default().max_deliveries(1))
        .unwrap();
    c.run(|| {
        solo.try_receive().unwrap().unwrap().nack().unwrap();
        let d = solo.try_receive().unwrap().unwrap();
        assert_eq!(d.offset(), 1);
    });
    let seen = c.take();
    let dead = named(&seen, events::DEAD_LETTER, "message dead-lettered");
    assert_eq!(dead.len(), 1, "{seen:?}");
    assert_eq!(dead[0].field("consumer"), "solo");
    assert_eq!(dead[0].field("dead_letter_stream"), "");
    assert_eq!(dead[0].field("reason"), "");
    assert_eq!(dead[0].u64("attempts"), 1);
}

#[test]
fn a_failed_sync_poisons_the_store_with_one_error_naming_the_file() {
    let c = Collector::default();
    let fs = SimFs::new();
    let store = Store::open("/db", sim::options(&fs, Durability::Always)).unwrap();
    let s = store.stream("orders").unwrap();
    s.send(b"first").unwrap();
    // The next operation of a send is its sync.
    fs.fail_at(fs.stats().ops + 1, spool::io::sim::FaultKind::Eio, false);
    let r = c.run(|| s.send(b"second"));
    assert!(matches!(r, Err(spool::Error::Poisoned)), "{r:?}");
    assert!(store.is_poisoned());
    // Later refusals do not repeat the event.
    let again = c.run(|| s.send(b"third"));
    assert!(matches!(again, Err(spool::Error::Poisoned)), "{again:?}");
    let seen = c.take();
    let poisoned = named(&seen, events::POISON, "store poisoned");
    assert_eq!(poisoned.len(), 1, "{seen:?}");
    let e = poisoned[0];
    assert_eq!(e.level, Level::ERROR);
    assert_eq!(e.field("what"), "sync segment");
    assert_eq!(
        e.field("path"),
        "/db/streams/orders/p0/00000000000000000000.seg"
    );
    assert!(e.field("error").contains("os error 5"), "{e:?}");
    assert_eq!(seen.len(), 1, "{seen:?}");
}

#[test]
fn a_slow_sync_is_a_warning_with_its_file_and_duration() {
    let c = Collector::default();
    let fs = SimFs::new();
    let opts = sim::options(&fs, Durability::Always).slow_sync_threshold(Duration::from_millis(5));
    let store = Store::open("/db", opts).unwrap();
    let s = store.stream("orders").unwrap();
    s.send(b"fast").unwrap();
    // Fast syncs say nothing.
    c.run(|| s.send(b"fast again").unwrap());
    assert!(c.take().is_empty());
    fs.set_sync_delay(Duration::from_millis(20));
    c.run(|| s.send(b"slow").unwrap());
    fs.set_sync_delay(Duration::ZERO);
    let seen = c.take();
    let slow = named(&seen, events::SYNC, "slow sync");
    assert_eq!(slow.len(), 1, "{seen:?}");
    let e = slow[0];
    assert_eq!(e.level, Level::WARN);
    assert_eq!(e.field("what"), "segment");
    assert_eq!(
        e.field("path"),
        "/db/streams/orders/p0/00000000000000000000.seg"
    );
    // Measured on the coarse monotonic clock: within one tick (4 ms on
    // most kernels, 10 ms at most) of the 20 ms the sync took.
    assert!(e.u64("duration_us") >= 10_000, "{e:?}");
    assert_eq!(e.u64("threshold_us"), 5_000);
    // A directory sync is timed too (a new stream's creation syncs some).
    fs.set_sync_delay(Duration::from_millis(20));
    c.run(|| store.stream("other").unwrap());
    fs.set_sync_delay(Duration::ZERO);
    let seen = c.take();
    let whats: Vec<&str> = named(&seen, events::SYNC, "slow sync")
        .iter()
        .map(|e| e.field("what"))
        .collect();
    assert!(whats.contains(&"directory"), "{whats:?}");
    assert!(whats.contains(&"file"), "{whats:?}");
}

#[test]
fn the_slow_sync_threshold_is_validated() {
    let fs = SimFs::new();
    let opts =
        sim::options(&fs, Durability::Always).slow_sync_threshold(Duration::from_micros(999));
    let r = Store::open("/db", opts);
    assert!(matches!(r, Err(spool::Error::InvalidConfig(_))), "{r:?}");
    assert_eq!(spool::SLOW_SYNC_THRESHOLD, Duration::from_millis(250));
}

#[test]
fn journal_rotations_are_debug_events() {
    let c = Collector::default();
    let fs = SimFs::new();
    let store = Store::open("/db", sim::consumer_options(&fs)).unwrap();
    let s = store.stream("jobs").unwrap();
    for _ in 0..200 {
        s.send(b"job").unwrap();
    }
    let worker = s.consumer("worker").unwrap();
    c.run(|| {
        for _ in 0..200 {
            worker.try_receive().unwrap().unwrap().ack().unwrap();
        }
    });
    let seen = c.take();
    let rotated = named(&seen, events::CONSUMER, "journal rotated");
    // The first journaled change starts a generation; 400 records of 24
    // bytes fill 4 KiB journals (then 8 KiB ones) more than once.
    assert!(rotated.len() >= 2, "{seen:?}");
    let mut last = 0;
    for e in &rotated {
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(e.field("stream"), "jobs");
        assert_eq!(e.field("consumer"), "worker");
        let g = e.u64("generation");
        assert!(g > last, "{rotated:?}");
        last = g;
        assert_eq!(
            e.field("journal"),
            format!("/db/streams/jobs/consumers/worker/journal.{g:020}")
        );
        assert!(e.u64("journal_bytes") >= 4096, "{e:?}");
    }
    // Nothing else on the per-message path.
    assert_eq!(rotated.len(), seen.len(), "{seen:?}");
}

fn ensure_dir(fs: &SimFs, dir: &std::path::Path) {
    use spool::io::Vfs;
    if fs.kind(dir).unwrap().is_none() {
        fs.create_dir(dir).unwrap();
    }
}

#[test]
fn leftovers_removed_and_indexes_rebuilt_at_open_are_reported() {
    use spool::io::Vfs;
    use std::path::Path;
    let c = Collector::default();
    let fs = SimFs::new();
    {
        let store = Store::open("/db", sim::options(&fs, Durability::Never)).unwrap();
        let s = store.stream("logs").unwrap();
        for _ in 0..100 {
            s.send(&[2u8; 1000]).unwrap();
        }
        assert!(s.stats().buckets[0].segments > 1);
        store.close().unwrap();
    }
    let bucket = Path::new("/db/streams/logs/p0");
    // A sealed segment's index gone, a temporary file of an interrupted
    // write, a stream whose creation was interrupted, and an orphan blob
    // with the pending mark a crashed send leaves.
    let idx = bucket.join("00000000000000000000.idx");
    fs.remove_file(&idx).unwrap();
    let tmp = bucket.join(".retention.meta.tmp");
    fs.write_file(&tmp, b"half").unwrap();
    let incomplete = Path::new("/db/streams/.tmp-new-0000000000000001");
    fs.create_dir(incomplete).unwrap();
    let hex = blake3::hash(b"nobody").to_hex().to_string();
    let orphan = Path::new("/db/blobs").join(&hex[..2]).join(&hex);
    ensure_dir(&fs, Path::new("/db/blobs"));
    ensure_dir(&fs, orphan.parent().unwrap());
    fs.write_file(&orphan, b"nobody").unwrap();
    ensure_dir(&fs, Path::new("/db/blobs/pending"));
    fs.write_file(
        &Path::new("/db/blobs/pending").join(format!("{hex}-0000000000000001")),
        b"",
    )
    .unwrap();
    let store = c.run(|| Store::open("/db", sim::options(&fs, Durability::Never)).unwrap());
    let report = store.recovery_report().clone();
    let seen = c.take();
    let paths = |message: &str| -> Vec<String> {
        named(&seen, events::RECOVERY, message)
            .iter()
            .map(|e| {
                assert_eq!(e.level, Level::INFO, "{e:?}");
                e.field("path").to_string()
            })
            .collect()
    };
    assert_eq!(paths("index rebuilt"), [idx.display().to_string()]);
    assert_eq!(paths("temporary file removed"), [tmp.display().to_string()]);
    assert_eq!(
        paths("incomplete stream removed"),
        [incomplete.display().to_string()]
    );
    let orphans = named(&seen, events::RECOVERY, "orphan blobs removed");
    assert_eq!(orphans.len(), 1, "{seen:?}");
    assert_eq!(orphans[0].u64("count"), 1);
    let opened = named(&seen, events::RECOVERY, "store opened");
    assert_eq!(opened.len(), 1, "{seen:?}");
    let e = opened[0];
    assert_eq!(
        (
            e.u64("rebuilt_indexes"),
            e.u64("removed_temp_files"),
            e.u64("removed_incomplete_streams"),
            e.u64("removed_orphan_blobs"),
            e.u64("torn_tails"),
        ),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(report.removed_orphan_blobs, 1);
    assert_eq!(seen.last().unwrap().message, "store opened");
}
