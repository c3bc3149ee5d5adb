//! Child processes of a test binary, and the store lock they may hold for a
//! moment.

use spool::{Error, Options, Store};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// This test binary again, running only the test `test`, its output not
/// captured: the child side of a test with several processes (a test that
/// does nothing unless its environment says otherwise).
pub fn rerun(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"]);
    cmd
}

/// Kills the child with SIGKILL (if still running) and reaps it when
/// dropped, so that a failing assertion does not leave a process behind.
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `Store::open`, retrying briefly on `Locked`. Between fork and exec a child
/// process holds copies of every descriptor of its parent, the lock of a
/// store just closed included, for a few microseconds; a lock that is really
/// still held fails after 5 s.
pub fn open_retry(path: impl AsRef<Path>, opts: Options) -> spool::Result<Store> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(path.as_ref(), opts.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            other => return other,
        }
    }
}

/// Makes a FIFO with the `mkfifo` command (no `unsafe` in tests).
pub fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

/// `cmd` run with at most `n` open file descriptors (`ulimit -n` in a
/// shell that then executes it), so that no `unsafe` `setrlimit` is needed.
pub fn with_descriptor_limit(cmd: &Command, n: u32) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

/// The child side of a test with several processes: writes `line` to the
/// parent on a line of its own after `mark` (test output around it is
/// ignored), flushed at once so that a SIGKILL right after loses nothing
/// said.
pub fn say_to_parent(mark: &str, line: &str) {
    use std::io::Write;
    let out = std::io::stdout();
    let mut out = out.lock();
    write!(out, "\n{mark}{line}\n").expect("write to parent");
    out.flush().expect("flush to parent");
}

/// The parent side: starts `cmd` with its output piped and returns the
/// child (killed and reaped when dropped), the lines it said with `mark`
/// (see [`say_to_parent`]), without the mark, as they come, and the thread
/// reading them (it ends when the child's output closes).
pub fn spawn_marked(
    cmd: &mut Command,
    mark: &'static str,
) -> (
    Reaper,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Reaper(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix(mark) {
                if tx.send(rest.to_string()).is_err() {
                    break;
                }
            }
        }
    });
    (child, rx, reader)
}

/// How many kills a kill -9 loop makes (`SPOOL_KILL9_ITERS`, else
/// `default`) and the seed of its random choices (`SPOOL_KILL9_SEED`
/// replays a run, else one from the clock); prints both, so that a failure
/// names the seed to replay (the exact moment of each kill still depends on
/// timing).
pub fn kill9_plan(what: &str, default: u32) -> (u32, super::Xorshift) {
    let iters = super::env_parsed("SPOOL_KILL9_ITERS").unwrap_or(default);
    let seed = super::env_parsed("SPOOL_KILL9_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos() as u64
    }) | 1;
    println!("{what}: seed {seed}, {iters} kills; replay with SPOOL_KILL9_SEED={seed}");
    (iters, super::Xorshift(seed))
}
