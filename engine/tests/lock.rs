//! Goal: a store is open in at most one place at a time (reliability.md L1, fault F11).
//! A second `Store::open` of the same directory, from this process or another, fails at
//! once with `Error::Locked` and disturbs nothing; the lock goes away when the holder drops
//! its last handle or is killed with SIGKILL.
//!
//! Method: in-process opens check the first two points directly. For another process this
//! test binary re-runs itself (the `lock_child` test, inert unless `SPOOL_LOCK_CHILD` names
//! a store): in "try" mode the child opens the store and reports the outcome in its exit
//! code; in "hold" mode it opens the store, sends one message, says "held" on stdout and
//! waits to be killed.

pub mod common;

use common::process::{open_retry, rerun, Reaper};
use spool::{Error, Options, Store};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_ENV: &str = "SPOOL_LOCK_CHILD";
const MODE_ENV: &str = "SPOOL_LOCK_CHILD_MODE";

/// Exit codes of a child in "try" mode.
const OPENED: i32 = 20;
const LOCKED: i32 = 21;
const OTHER_ERROR: i32 = 22;

/// The child process: does nothing unless started by one of the tests below.
#[test]
fn lock_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mode = std::env::var(MODE_ENV).unwrap_or_default();
    match mode.as_str() {
        "try" => {
            let code = match Store::open(&dir, Options::default()) {
                Ok(_) => OPENED,
                // Held by the parent: another process.
                Err(Error::Locked {
                    this_process: false,
                    ..
                }) => LOCKED,
                Err(e) => {
                    eprintln!("lock child: open failed: {e}");
                    OTHER_ERROR
                }
            };
            std::process::exit(code);
        }
        "hold" => {
            let store = Store::open(&dir, Options::default()).expect("hold: open");
            store
                .stream("held")
                .expect("hold: stream")
                .send(b"sent by the holder")
                .expect("hold: send");
            println!("\nheld");
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
        other => panic!("unknown child mode {other:?}"),
    }
}

fn child(dir: &Path, mode: &str) -> Command {
    let mut cmd = rerun("lock_child");
    cmd.env(CHILD_ENV, dir)
        .env(MODE_ENV, mode)
        .stdin(Stdio::null());
    cmd
}

/// Runs a child that tries to open `dir`; returns its exit code.
fn try_open_elsewhere(dir: &Path) -> i32 {
    let status = child(dir, "try")
        .stdout(Stdio::null())
        .status()
        .expect("run child");
    status.code().expect("child exited normally")
}

/// Asserts that `r` failed with `Locked`, held by this process or not.
fn assert_locked(r: spool::Result<Store>, dir: &Path, here: bool) {
    match r {
        Err(Error::Locked { path, this_process }) => {
            assert_eq!(path, dir);
            assert_eq!(this_process, here, "who holds the lock");
        }
        Err(e) => panic!("expected Error::Locked, got {e}"),
        Ok(_) => panic!("a second open of {} succeeded", dir.display()),
    }
}

#[test]
fn second_open_in_process_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = Store::open(dir, Options::default()).unwrap();
    let s = first.stream("orders").unwrap();
    assert_eq!(s.send(b"one").unwrap(), 0);

    assert_locked(Store::open(dir, Options::default()), dir, true);
    // Again, and through another spelling of the same path.
    assert_locked(Store::open(dir, Options::default()), dir, true);
    let dotted = dir.join(".");
    assert!(matches!(
        Store::open(&dotted, Options::default()),
        Err(Error::Locked { .. })
    ));

    // The failed opens disturbed nothing: the holder goes on working.
    assert_eq!(s.send(b"two").unwrap(), 1);
    assert_eq!(s.read(0).unwrap().unwrap().payload(), b"one");
    drop(s);
    drop(first);

    // Dropping the only handle releases the lock.
    let again = reopen_after_release(dir);
    assert!(
        again.recovery_report().is_clean(),
        "{}",
        again.recovery_report()
    );
    let s = again.stream("orders").unwrap();
    assert_eq!(s.read(1).unwrap().unwrap().payload(), b"two");
    assert_eq!(s.send(b"three").unwrap(), 2);
}

#[test]
fn lock_is_held_until_the_last_handle_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = Store::open(dir, Options::default()).unwrap();
    let clone = store.clone();
    let stream = store.stream("orders").unwrap();
    drop(store);
    assert_locked(Store::open(dir, Options::default()), dir, true);
    drop(clone);
    // A stream handle keeps the store open too.
    assert_locked(Store::open(dir, Options::default()), dir, true);
    stream.send(b"still open").unwrap();
    drop(stream);
    let store = reopen_after_release(dir);
    let s = store.stream("orders").unwrap();
    assert_eq!(s.read(0).unwrap().unwrap().payload(), b"still open");
}

#[test]
fn close_releases_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = Store::open(dir, Options::default()).unwrap();
    store.stream("orders").unwrap().send(b"x").unwrap();
    store.close().unwrap();
    reopen_after_release(dir);
}

/// Opens a store whose last handle was just dropped. Other tests in this
/// process spawn child processes, which may hold a copy of the lock for a
/// moment, so a `Locked` here is retried briefly ([`open_retry`]); a lock
/// that is really still held fails.
fn reopen_after_release(dir: &Path) -> Store {
    open_retry(dir, Options::default())
        .unwrap_or_else(|e| panic!("reopen after the last handle was dropped: {e}"))
}

#[test]
fn second_open_from_another_process_is_locked() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = Store::open(dir, Options::default()).unwrap();
    assert_eq!(try_open_elsewhere(dir), LOCKED);
    // The holder is unaffected.
    store.stream("orders").unwrap().send(b"mine").unwrap();
    drop(store);
    // Free again: the other process can open it (and closes it on exit).
    assert_eq!(try_open_elsewhere(dir), OPENED);
    let store = Store::open(dir, Options::default()).unwrap();
    let s = store.stream("orders").unwrap();
    assert_eq!(s.read(0).unwrap().unwrap().payload(), b"mine");
}

#[test]
fn lock_is_freed_when_the_holder_is_killed() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut holder = Reaper(
        child(dir, "hold")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn holder"),
    );
    let out = holder.0.stdout.take().expect("stdout");
    let held = BufReader::new(out)
        .lines()
        .map_while(|l| l.ok())
        .any(|l| l.trim() == "held");
    assert!(held, "the holder exited without taking the lock");

    assert_locked(Store::open(dir, Options::default()), dir, false);
    assert_eq!(try_open_elsewhere(dir), LOCKED);

    holder.0.kill().expect("SIGKILL the holder");
    let status = holder.0.wait().expect("wait for holder");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    // The kernel released the lock with the process: open succeeds, and the
    // holder's acknowledged message is there.
    let store = reopen_after_release(dir);
    let s = store.stream("held").unwrap();
    assert_eq!(s.read(0).unwrap().unwrap().payload(), b"sent by the holder");
    assert_eq!(s.send(b"after").unwrap(), 1);
}
