//! Goal: a real full disk (reliability matrix F10): sends, claim-check blob
//! writes and consumer checkpoints fail with a clear `Error::DiskFull`, the
//! process never dies of SIGBUS, nothing acknowledged is lost, and everything
//! works again once space is freed.
//!
//! Method: a 16 MiB tmpfs mounted by the test (needs root and permission to
//! mount; otherwise the test says why and skips). A store on it is filled
//! until sends fail; a filler file is then removed and work resumes. The
//! store is reopened and every acknowledged message checked.

use spool::{ConsumerConfig, Durability, Error, Options, Store, StreamConfig};
use std::path::{Path, PathBuf};
use std::process::Command;

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Result<Mount, String> {
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(Mount(dir.to_path_buf()))
}

fn opts() -> Options {
    Options::default()
        .durability(Durability::Always)
        .segment_bytes_max(1 << 20)
        .allocation_chunk_bytes(64 * 1024)
        .consumer_journal_bytes(64 * 1024)
}

#[test]
fn full_disk_is_an_error_and_recoverable() {
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("fs");
    std::fs::create_dir(&mnt).unwrap();
    let _mount = match mount_tmpfs(&mnt, "16m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why} (this test needs root and a mountable tmpfs)");
            return;
        }
    };
    let root = mnt.join("store");
    let store = Store::open(&root, opts()).unwrap();
    let s = store
        .create_stream("s", StreamConfig::default().claim_check_threshold(100_000))
        .unwrap();
    let c = s.consumer_with("c", ConsumerConfig::default()).unwrap();
    // Leave a filler file to free later.
    std::fs::write(mnt.join("filler"), vec![1u8; 2 << 20]).unwrap();
    let mut acked: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut errors = Vec::new();
    for i in 0u32.. {
        // Mostly small messages, every 10th a claim-check blob.
        let len = if i % 10 == 9 { 200_000 } else { 3000 };
        let payload: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
        match s.send(&payload) {
            Ok(o) => acked.push((o, payload)),
            Err(e) => {
                errors.push(e);
                if errors.len() >= 3 {
                    break;
                }
            }
        }
        // Consume a little as we go, so checkpoints are written too, but
        // slower than the sends (else retention keeps freeing the space).
        if i % 10 == 0 {
            if let Ok(Some(d)) = c.try_receive() {
                let _ = d.ack();
            }
        }
        assert!(i < 100_000, "the disk never filled up");
    }
    for e in &errors {
        assert!(
            matches!(e, Error::DiskFull { .. } | Error::Poisoned),
            "a full disk must be DiskFull (or, after a failed sync, Poisoned): {e}"
        );
    }
    assert!(
        errors.iter().any(|e| matches!(e, Error::DiskFull { .. })),
        "{errors:?}"
    );
    // Free space: sending works again (after a reopen if a sync failed).
    std::fs::remove_file(mnt.join("filler")).unwrap();
    let (store, s) = if store.is_poisoned() {
        drop((c, s, store));
        let store = Store::open(&root, opts()).unwrap();
        let s = store.stream("s").unwrap();
        (store, s)
    } else {
        drop(c);
        (store, s)
    };
    let after = s.send(b"after space was freed").unwrap();
    assert!(after >= acked.len() as u64);
    for (o, p) in &acked {
        assert_eq!(s.read(*o).unwrap().unwrap().payload(), &p[..], "offset {o}");
    }
    drop(s);
    store.close().unwrap();
    // And everything is there after a reopen.
    let store = Store::open(&root, opts()).unwrap();
    let s = store.stream("s").unwrap();
    for (o, p) in &acked {
        assert_eq!(
            s.read(*o).unwrap().unwrap().payload(),
            &p[..],
            "offset {o} after reopen"
        );
    }
    let c = s.consumer("c").unwrap();
    while let Some(d) = c.try_receive().unwrap() {
        d.ack().unwrap();
    }
}

/// Fills the file system at `mnt` to the last byte with a file `name`.
fn fill(mnt: &Path, name: &str) {
    use std::io::Write;
    let mut f = std::fs::File::create(mnt.join(name)).unwrap();
    let block = vec![0x5au8; 4096];
    while f.write_all(&block).is_ok() {}
    let mut byte = [0x5au8];
    while f.write_all(&byte).is_ok() {
        byte[0] ^= 1;
    }
}

#[test]
fn running_out_of_space_at_a_reservation_is_disk_full_whatever_errno_holds() {
    // The reservation (fallocate) is the first call of the thread to fail:
    // errno holds nothing about it (a fresh thread's errno is 0), so an
    // error read from errno instead of the call's return value is not
    // `DiskFull`.
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("fs");
    std::fs::create_dir(&mnt).unwrap();
    let _mount = match mount_tmpfs(&mnt, "4m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why} (this test needs root and a mountable tmpfs)");
            return;
        }
    };
    let root = mnt.join("store");
    let store = Store::open(&root, opts()).unwrap();
    let s = store.stream("s").unwrap();
    fill(&mnt, "filler");
    let sent = std::thread::spawn(move || {
        let mut n = 0u64;
        loop {
            match s.send(&[7u8; 3000]) {
                Ok(_) => n += 1,
                Err(e) => return (n, e),
            }
            assert!(n < 10_000, "the disk never filled up");
        }
    })
    .join()
    .unwrap();
    assert!(
        matches!(sent.1, Error::DiskFull { .. }),
        "after {} sends: {:?}",
        sent.0,
        sent.1
    );
    assert!(!store.is_poisoned());
    // With space again, sending goes on.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    store.stream("s").unwrap().send(b"again").unwrap();
}

#[test]
fn a_store_on_a_full_disk_reopens_with_its_consumers() {
    // Default journal sizes: a 16 MiB journal per consumer and open would
    // not fit this disk at all.
    let base = tempfile::tempdir().unwrap();
    let mnt = base.path().join("fs");
    std::fs::create_dir(&mnt).unwrap();
    let _mount = match mount_tmpfs(&mnt, "8m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: {why} (this test needs root and a mountable tmpfs)");
            return;
        }
    };
    let root = mnt.join("store");
    let opts = || Options::default().allocation_chunk_bytes(64 * 1024);
    {
        let store = Store::open(&root, opts()).unwrap();
        for name in ["a", "b"] {
            let s = store.stream(name).unwrap();
            s.consumer("c").unwrap();
            for i in 0..100u32 {
                s.send(format!("{name}{i}").as_bytes()).unwrap();
            }
        }
        store.close().unwrap();
    }
    fill(&mnt, "filler");
    let store = Store::open(&root, opts()).expect("open on a full disk");
    let c = store.stream("a").unwrap().consumer("c").unwrap();
    let d = c.try_receive().unwrap().expect("a message");
    assert_eq!(d.payload(), b"a0");
    assert!(matches!(d.ack(), Err(Error::DiskFull { .. })));
    assert!(!store.is_poisoned());
    std::fs::remove_file(mnt.join("filler")).unwrap();
    c.ack_up_to(0, 49).unwrap();
    drop(c);
    store.close().unwrap();
    let store = Store::open(&root, opts()).unwrap();
    let c = store.stream("a").unwrap().consumer("c").unwrap();
    assert_eq!(c.try_receive().unwrap().unwrap().payload(), b"a50");
}
