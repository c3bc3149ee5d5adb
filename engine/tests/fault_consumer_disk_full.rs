//! Goal: a full disk never keeps a store with consumers from opening. A
//! consumer that cannot start a journal generation still opens and
//! receives; its acks fail with `Error::DiskFull` (nothing poisoned) until
//! there is room, then work again, and no confirmed ack is undone by a
//! later power cut. A consumer whose creation ran out of space never breaks
//! an open. Journals start small, so an idle consumer costs little disk.
//!
//! Method: stores on the simulated file system filled to the last byte
//! (`SimFs::set_capacity`), reopened; a power cut at every operation of a
//! consumer that opens on a full disk and gets room back in the middle of
//! its workload; and the disk use of a small store on the real file system.

pub mod common;

use common::sim;
use spool::io::sim::{CutMode, SimFs};
use spool::{ConsumerConfig, Durability, Error, Options, Store};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const ROOT: &str = "/f";

/// Default journal sizes: the first journal of a consumer would not fit the
/// room left on these disks if it were the whole 16 MiB.
fn options(fs: &SimFs) -> Options {
    sim::options(fs, Durability::Always)
}

/// The bytes the files of `fs` hold: the space a file system made of them
/// uses (`SimFs::from_image` reserves exactly their lengths).
fn used(fs: &SimFs) -> u64 {
    fs.files()
        .iter()
        .map(|f| fs.read_file(f).unwrap().len() as u64)
        .sum()
}

/// A store with stream "s" of 40 messages and consumer "c" that received
/// and acknowledged the first 10, closed; what survives, on a disk with
/// `room` bytes free.
fn filled_store(room: u64) -> SimFs {
    let fs = SimFs::new();
    {
        let store = Store::open(ROOT, options(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        let c = s
            .consumer_with(
                "c",
                ConsumerConfig::default().visibility_timeout(Duration::from_secs(3600)),
            )
            .unwrap();
        for i in 0..40u32 {
            s.send(format!("m{i}").as_bytes()).unwrap();
        }
        for _ in 0..10 {
            c.receive(Duration::ZERO).unwrap().unwrap().ack().unwrap();
        }
        drop((c, s));
        store.close().unwrap();
    }
    let fs = fs.power_cut(CutMode::DropUnsynced);
    fs.set_capacity(used(&fs) + room);
    fs
}

#[test]
fn a_store_full_to_the_last_byte_opens_and_its_consumers_read() {
    let fs = filled_store(0);
    let store = Store::open(ROOT, options(&fs)).expect("open on a full disk");
    let s = store.stream("s").unwrap();
    let c = s.consumer("c").unwrap();
    let d = c.receive(Duration::ZERO).unwrap().expect("a message");
    assert_eq!(d.offset(), 10);
    assert!(
        matches!(d.ack(), Err(Error::DiskFull { .. })),
        "an ack needs journal space"
    );
    assert!(!store.is_poisoned());
    // Room again: the same ack goes through, and holds.
    fs.set_capacity(u64::MAX);
    let d = c
        .receive(Duration::ZERO)
        .unwrap()
        .expect("redelivered first");
    assert_eq!(d.offset(), 11, "offset 10 is still leased");
    d.ack().unwrap();
    c.ack_up_to(0, 10).unwrap();
    drop((c, s));
    store.close().unwrap();
    let store = Store::open(ROOT, options(&fs)).unwrap();
    let c = store.stream("s").unwrap().consumer("c").unwrap();
    assert_eq!(c.receive(Duration::ZERO).unwrap().unwrap().offset(), 12);
}

#[test]
fn a_consumer_created_on_a_nearly_full_disk_never_breaks_an_open() {
    // Room for a consumer's directory but not for a journal, then for
    // nothing at all.
    for room in [0, 2048, 20_000, 70_000] {
        let fs = filled_store(room);
        let store = Store::open(ROOT, options(&fs)).unwrap();
        let s = store.stream("s").unwrap();
        match s.consumer("late") {
            Ok(c) => {
                // It reads; an ack may wait for room.
                let d = c.receive(Duration::ZERO).unwrap().expect("a message");
                let _ = d.ack();
            }
            Err(e) => assert!(matches!(e, Error::DiskFull { .. }), "room {room}: {e:?}"),
        }
        assert!(!store.is_poisoned(), "room {room}");
        drop(s);
        drop(store);
        let store = Store::open(ROOT, options(&fs))
            .unwrap_or_else(|e| panic!("room {room}: reopen on a full disk: {e}"));
        // Creating it again (or opening it) works once there is room.
        fs.set_capacity(u64::MAX);
        let c = store.stream("s").unwrap().consumer("late").unwrap();
        let d = c.receive(Duration::ZERO).unwrap().expect("a message");
        d.ack().unwrap();
    }
}

/// Offsets whose ack returned, and offsets an ack was issued for.
#[derive(Default)]
struct Acked {
    confirmed: BTreeSet<u64>,
    attempted: BTreeSet<u64>,
}

/// Opens the store on the full disk `fs`, receives and tries to ack, gives
/// the disk room after a few steps, and goes on past several journal
/// rotations (16 KiB journals: the first 4 KiB, then 8 and 16).
fn workload(fs: &SimFs, acked: &mut Acked) -> spool::Result<()> {
    let opts = options(fs).consumer_journal_bytes(16 << 10);
    let store = Store::open(ROOT, opts)?;
    let s = store.stream("s")?;
    let c = s.consumer("c")?;
    for round in 0..400u32 {
        if round == 3 {
            fs.set_capacity(u64::MAX);
        }
        s.send(format!("n{round}").as_bytes())?;
        let Some(d) = c.receive(Duration::ZERO)? else {
            continue;
        };
        let o = d.offset();
        acked.attempted.insert(o);
        match d.ack() {
            Ok(()) => {
                acked.confirmed.insert(o);
            }
            Err(Error::DiskFull { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn check(fs: &SimFs, acked: &Acked, what: &str) {
    let store = Store::open(ROOT, options(fs)).unwrap_or_else(|e| panic!("{what}: reopen: {e}"));
    let s = store.stream("s").unwrap();
    let end = s.stats().buckets[0].end_offset;
    let c = s.consumer("c").unwrap();
    let mut delivered = BTreeSet::new();
    while let Some(d) = c.receive(Duration::ZERO).unwrap() {
        assert!(
            !acked.confirmed.contains(&d.offset()),
            "{what}: acknowledged offset {} delivered again",
            d.offset()
        );
        assert!(delivered.insert(d.offset()), "{what}: duplicate");
        d.ack().unwrap();
    }
    for o in 10..end {
        assert!(
            acked.attempted.contains(&o) || delivered.contains(&o),
            "{what}: offset {o} lost"
        );
    }
}

#[test]
fn power_cut_at_every_operation_of_a_consumer_that_opens_on_a_full_disk() {
    let full = filled_store(0);
    let probe = full.power_cut(CutMode::DropUnsynced);
    probe.set_capacity(used(&probe));
    let start = probe.stats().ops;
    let mut acked = Acked::default();
    workload(&probe, &mut acked).expect("clean run");
    let total = probe.stats().ops - start;
    assert!(!acked.confirmed.is_empty() && acked.confirmed.len() > 300);
    assert!(probe.violations().is_empty());
    let generations = probe
        .files()
        .iter()
        .filter_map(|f| f.to_str()?.rsplit_once("journal.")?.1.parse::<u64>().ok())
        .max()
        .unwrap();
    assert!(generations >= 5, "too few rotations: {generations}");
    for n in 1..=total {
        for mode in [CutMode::DropUnsynced, CutMode::RandomPages(n)] {
            let fs = full.power_cut(CutMode::DropUnsynced);
            fs.set_capacity(used(&fs));
            fs.crash_at(fs.stats().ops + n, mode);
            let mut acked = Acked::default();
            let _ = workload(&fs, &mut acked);
            let Some(image) = fs.crashed_image() else {
                continue;
            };
            check(
                &SimFs::from_image(&image),
                &acked,
                &format!("cut at op {n}/{total} {mode:?}"),
            );
        }
    }
}

/// Bytes of disk the files under `dir` take.
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            disk_use(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

#[test]
fn a_small_store_with_consumers_takes_little_disk() {
    // 5 streams, a consumer on each, under 2,000 small messages.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), Options::default()).unwrap();
        for i in 0..5 {
            let s = store.stream(&format!("s{i}")).unwrap();
            let c = s.consumer("c").unwrap();
            let batch: Vec<Vec<u8>> = (0..390)
                .map(|j| format!("message {j}").into_bytes())
                .collect();
            s.send_batch(batch.iter()).unwrap();
            for _ in 0..100 {
                c.receive(Duration::ZERO).unwrap().unwrap().ack().unwrap();
            }
        }
        store.close().unwrap();
    }
    // Reopened, as a store usually is: every open starts new journals.
    drop(Store::open(dir.path(), Options::default()).unwrap());
    let bytes = disk_use(dir.path());
    println!("disk use: {:.1} MiB", bytes as f64 / (1 << 20) as f64);
    assert!(bytes < 8 << 20, "{bytes} bytes");
}
