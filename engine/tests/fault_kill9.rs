//! Goal: a message acknowledged with `Durability::Always` survives the process being killed
//! with SIGKILL at any moment, including while `Store::open` recovers from an earlier kill,
//! and the store reopens unaided (reliability.md C1, design-brief section 11).
//!
//! Method: this test binary re-runs itself as a child process (the `kill9_child` test, which
//! does nothing unless `SPOOL_KILL9_CHILD` names a store). The child opens the store with
//! `Durability::Always` and small segments (so segments roll), sends messages whose headers
//! and payload are computed from (seed, stream, priority, offset) - single sends, batches,
//! headers, a three-level priority stream - and after each send returns writes the
//! acknowledged offsets to stdout, the pipe to the parent. One child in five uses
//! `Durability::Never` instead, which promises the same for a process crash and tears many
//! more records (it spends its time copying, not syncing). The parent kills the child after
//! a random delay (about 10% of the time during `Store::open`), then reopens the store and
//! checks: every acknowledged offset is present and byte-identical, offsets are a gap-free
//! prefix of every bucket whose every record (acknowledged or not) is the one computed for
//! it, no read fails, a torn tail is cut only past the acknowledged offsets, and a new send
//! gets the next offset. Then the next child runs on the same store, so later generations
//! recover from earlier crashes.
//!
//! `SPOOL_KILL9_ITERS` sets the number of kills (default 100); the seed is printed and
//! `SPOOL_KILL9_SEED` replays the workload and the choice of kill moments (the exact
//! instant of each kill depends on timing and is not replayable).

pub mod common;

use common::process::{rerun, Reaper};
use spool::{Durability, Error, Message, Options, Store, StreamConfig};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "SPOOL_KILL9_CHILD";
const CHILD_SEED_ENV: &str = "SPOOL_KILL9_CHILD_SEED";
const CHILD_NEVER_ENV: &str = "SPOOL_KILL9_CHILD_NEVER";
/// Marks the child's protocol lines (the test harness writes to stdout too).
const MARK: &str = "@@k9 ";
/// The streams: name and number of priority levels.
const STREAMS: [(&str, u8); 2] = [("plain", 1), ("ranked", 3)];
/// A child that is never killed stops after this many sends.
const CHILD_SENDS_MAX: u32 = 20_000;
/// Children (kills) per store: each store sees this many generations of crash and recovery.
const GENERATIONS_PER_STORE: u32 = 100;
/// Guards against a hung child; not a timing assertion.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn options(durability: Durability) -> Options {
    Options::default()
        .durability(durability)
        .segment_bytes_max(64 * 1024)
}

// ---------------------------------------------------------------------------
// Deterministic content

/// SplitMix64 step: a good 64-bit mix of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Xorshift64* generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(mix(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `0..n` (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The message the writer with `seed` sends at `offset` of bucket (`stream`, `priority`).
struct Expected {
    payload: Vec<u8>,
    headers: Vec<(&'static str, Vec<u8>)>,
}

fn expected(seed: u64, stream: usize, priority: u8, offset: u64) -> Expected {
    let h = mix(seed ^ mix(((stream as u64) << 8 | priority as u64) ^ mix(offset)));
    let len = match h % 16 {
        0 => 0,
        1 => 1,
        _ => (h >> 8) % 2000,
    } as usize;
    let mut rng = Rng::new(h);
    let mut payload = Vec::with_capacity(len + 8);
    while payload.len() < len {
        payload.extend_from_slice(&rng.next().to_le_bytes());
    }
    payload.truncate(len);
    let headers = if (h >> 40) % 3 == 0 {
        vec![
            ("k9-offset", offset.to_string().into_bytes()),
            ("k9-seed", format!("{seed:016x}").into_bytes()),
        ]
    } else {
        Vec::new()
    };
    Expected { payload, headers }
}

impl Expected {
    fn message(&self, priority: u8) -> Message<'_> {
        let mut m = Message::new(&self.payload).priority(priority);
        for (k, v) in &self.headers {
            m = m.header(k, v);
        }
        m
    }
}

/// Gets or creates stream `i` of [`STREAMS`].
fn open_stream(store: &Store, i: usize) -> spool::Stream {
    let (name, levels) = STREAMS[i];
    if levels == 1 {
        return store.stream(name).expect("get or create stream");
    }
    match store.create_stream(name, StreamConfig::default().priorities(levels)) {
        Ok(s) => s,
        Err(Error::StreamExists { .. }) => store.stream(name).expect("existing stream"),
        Err(e) => panic!("create stream {name}: {e}"),
    }
}

// ---------------------------------------------------------------------------
// Child

/// The child process: does nothing unless started by [`kill9_loop`].
#[test]
fn kill9_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let seed: u64 = std::env::var(CHILD_SEED_ENV)
        .expect("child seed")
        .parse()
        .expect("child seed is a number");
    let out = std::io::stdout();
    let mut out = out.lock();
    let mut say = |line: &str| {
        // A newline first: the harness may have left "test kill9_child ... " unterminated.
        write!(out, "\n{MARK}{line}\n").expect("write to parent");
        out.flush().expect("flush to parent");
    };
    // Mostly `Always`; sometimes `Never`, which is documented to lose nothing already sent
    // on a process crash (the data is in the page cache) and, syncing nothing, makes kills
    // land inside record writes far more often: torn tails.
    let durability = if std::env::var_os(CHILD_NEVER_ENV).is_some() {
        Durability::Never
    } else {
        Durability::Always
    };
    say("opening");
    let t = Instant::now();
    let store = Store::open(&dir, options(durability)).expect("child: open store");
    say(&format!("ready {}", t.elapsed().as_micros()));
    let mut rng = Rng::new(seed ^ 0xc41d);
    let mut streams: Vec<Option<spool::Stream>> = vec![None, None];
    // Next offset of each bucket, as this child (the only writer) expects it.
    let mut next: BTreeMap<(usize, u8), u64> = BTreeMap::new();
    let mut sends = 0;
    while sends < CHILD_SENDS_MAX {
        let si = if rng.chance(60) { 0 } else { 1 };
        if streams[si].is_none() {
            let s = open_stream(&store, si);
            for b in s.stats().buckets {
                next.insert((si, b.priority), b.end_offset);
            }
            streams[si] = Some(s);
        }
        let stream = streams[si].as_ref().expect("opened above");
        let levels = STREAMS[si].1;
        let batch = if rng.chance(25) {
            1 + rng.below(24) as usize
        } else {
            0
        };
        // Build the messages and the offsets they must get.
        let count = batch.max(1);
        let mut planned = Vec::with_capacity(count);
        for _ in 0..count {
            let p = rng.below(levels as u64) as u8;
            let n = next.get_mut(&(si, p)).expect("bucket known");
            planned.push((p, *n, expected(seed, si, p, *n)));
            *n += 1;
        }
        let got: Vec<u64> = if batch > 0 {
            stream
                .send_batch(planned.iter().map(|(p, _, e)| e.message(*p)))
                .expect("child: send_batch")
        } else {
            let (p, _, e) = &planned[0];
            let off = if *p == 0 && e.headers.is_empty() && rng.chance(50) {
                stream.send(&e.payload)
            } else {
                stream.send_message(e.message(*p))
            };
            vec![off.expect("child: send")]
        };
        assert_eq!(got.len(), planned.len());
        for ((p, want, _), got) in planned.iter().zip(&got) {
            assert_eq!(*got, *want, "child: stream {si} priority {p} offset");
        }
        let mut line = String::from("ack");
        for (p, off, _) in &planned {
            line.push_str(&format!(" {si}/{p}/{off}"));
        }
        say(&line);
        sends += 1;
    }
    drop(streams);
    store.close().expect("child: close");
    say("done");
}

// ---------------------------------------------------------------------------
// Parent

enum Event {
    Opening,
    /// With the time `Store::open` took.
    Ready(Duration),
    Ack(Vec<(usize, u8, u64)>),
    Done,
}

fn parse(line: &str) -> Option<Event> {
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let mut words = rest.split_whitespace();
    match words.next()? {
        "opening" => Some(Event::Opening),
        "ready" => Some(Event::Ready(Duration::from_micros(
            words.next().and_then(|w| w.parse().ok()).unwrap_or(0),
        ))),
        "done" => Some(Event::Done),
        "ack" => Some(Event::Ack(
            words
                .map(|w| {
                    let mut f = w.split('/');
                    let mut num = || f.next().and_then(|x| x.parse::<u64>().ok());
                    match (num(), num(), num()) {
                        (Some(s), Some(p), Some(o)) => (s as usize, p as u8, o),
                        _ => panic!("bad ack line from child: {line:?}"),
                    }
                })
                .collect(),
        )),
        other => panic!("unknown line from child: {other:?}"),
    }
}

/// What the parent has heard from one child.
#[derive(Default)]
struct Seen {
    opening: bool,
    ready: Option<Duration>,
    done: bool,
    /// Highest acknowledged offset of each bucket.
    acked: BTreeMap<(usize, u8), u64>,
    acked_count: u64,
}

impl Seen {
    fn take(&mut self, ev: Event) {
        match ev {
            Event::Opening => self.opening = true,
            Event::Ready(t) => self.ready = Some(t),
            Event::Ack(offs) => {
                self.acked_count += offs.len() as u64;
                for (s, p, o) in offs {
                    let m = self.acked.entry((s, p)).or_insert(o);
                    *m = (*m).max(o);
                }
            }
            Event::Done => self.done = true,
        }
    }

    /// Takes events until the child said "ready" (or "opening") or exited.
    fn wait(&mut self, rx: &mpsc::Receiver<Event>, for_ready: bool) {
        loop {
            let reached = if for_ready {
                self.ready.is_some()
            } else {
                self.opening
            };
            if reached {
                return;
            }
            match rx.recv_timeout(HANG_GUARD) {
                Ok(ev) => self.take(ev),
                Err(mpsc::RecvTimeoutError::Disconnected) => return, // exited: checked later
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("the child was silent for {HANG_GUARD:?}: hung?")
                }
            }
        }
    }
}

/// Which writer produced each stretch of offsets of each bucket: (first offset, seed),
/// later entries shadowing earlier ones from their first offset on.
#[derive(Default)]
struct Writers(BTreeMap<(usize, u8), Vec<(u64, u64)>>);

impl Writers {
    fn begin(&mut self, bucket: (usize, u8), from: u64, seed: u64) {
        let v = self.0.entry(bucket).or_default();
        while v.last().is_some_and(|&(start, _)| start >= from) {
            v.pop();
        }
        v.push((from, seed));
    }

    fn seed_of(&self, bucket: (usize, u8), offset: u64) -> Option<u64> {
        self.0
            .get(&bucket)?
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .map(|&(_, seed)| seed)
    }
}

#[derive(Default)]
struct Totals {
    never: u32,
    killed_in_open: u32,
    killed_before_open: u32,
    finished: u32,
    acked: u64,
    torn_tails: u64,
    removed_streams: u64,
    records_checked: u64,
}

/// Reopens the store after a child died and checks every invariant. Returns each bucket's
/// end after the parent's own probe send, which the next child continues from.
fn check_store(
    dir: &Path,
    iter: u32,
    acked: &BTreeMap<(usize, u8), u64>,
    writers: &mut Writers,
    probe_seed: u64,
    totals: &mut Totals,
) -> BTreeMap<(usize, u8), u64> {
    let ctx = |what: String| format!("iteration {iter}: {what}");
    let store = match Store::open(dir, options(Durability::Always)) {
        Ok(s) => s,
        Err(e) => panic!("{}", ctx(format!("reopen failed: {e}"))),
    };
    let report = store.recovery_report().clone();
    totals.torn_tails += report.torn_tails.len() as u64;
    totals.removed_streams += report.removed_incomplete_streams.len() as u64;
    let names = store.streams();
    let mut ends = BTreeMap::new();
    for (si, (name, levels)) in STREAMS.iter().enumerate() {
        if !names.iter().any(|n| n == name) {
            for p in 0..*levels {
                let bucket = (si, p);
                if let Some(max) = acked.get(&bucket) {
                    panic!(
                        "{}",
                        ctx(format!(
                            "stream {name} is missing but offset {max} of priority {p} was acknowledged"
                        ))
                    );
                }
                ends.insert(bucket, 0);
            }
            continue;
        }
        let stream = store.stream(name).expect("listed stream");
        assert_eq!(
            stream.config().priorities,
            *levels,
            "{}",
            ctx(format!("stream {name} priorities"))
        );
        let stats = stream.stats();
        for p in 0..*levels {
            let bucket = (si, p);
            let end = stats.buckets[p as usize].end_offset;
            assert_eq!(
                stats.buckets[p as usize].first_offset,
                0,
                "{}",
                ctx(format!("{name}/{p}: first offset (nothing is deleted)"))
            );
            // Invariant 1 and 4: everything acknowledged is below the end.
            if let Some(&max) = acked.get(&bucket) {
                assert!(
                    end > max,
                    "{}",
                    ctx(format!(
                        "{name}/{p}: LOST acknowledged messages: end is {end} after reopen, \
                         but offset {max} was acknowledged\nrecovery report: {report}"
                    ))
                );
            }
            // Invariants 1 and 2: a gap-free prefix 0..end, each record the one sent.
            let mut n = 0u64;
            for r in stream.iter_priority(p, 0).expect("valid priority") {
                let r = match r {
                    Ok(r) => r,
                    Err(e) => panic!(
                        "{}",
                        ctx(format!("{name}/{p}: reading offset {n} failed: {e}"))
                    ),
                };
                assert_eq!(r.offset(), n, "{}", ctx(format!("{name}/{p}: offset gap")));
                let Some(seed) = writers.seed_of(bucket, n) else {
                    panic!("{}", ctx(format!("{name}/{p}: offset {n} has no writer")));
                };
                let want = expected(seed, si, p, n);
                if r.payload() != want.payload.as_slice() {
                    panic!(
                        "{}",
                        ctx(format!(
                            "{name}/{p}: WRONG PAYLOAD at offset {n} (acknowledged: {}): \
                             expected {} bytes, found {} bytes",
                            acked.get(&bucket).is_some_and(|&m| n <= m),
                            want.payload.len(),
                            r.payload().len()
                        ))
                    );
                }
                let got: Vec<(&str, &[u8])> = r.headers().collect();
                let want_h: Vec<(&str, &[u8])> = want
                    .headers
                    .iter()
                    .map(|(k, v)| (*k, v.as_slice()))
                    .collect();
                assert_eq!(
                    got,
                    want_h,
                    "{}",
                    ctx(format!("{name}/{p}: headers at {n}"))
                );
                n += 1;
                totals.records_checked += 1;
            }
            assert_eq!(
                n,
                end,
                "{}",
                ctx(format!("{name}/{p}: iteration stopped before the end"))
            );
            // Reads at and past the end find nothing (and do not fail).
            for off in [end, end + 1, end + 1000] {
                match stream.read_priority(p, off) {
                    Ok(None) => {}
                    Ok(Some(_)) => {
                        panic!("{}", ctx(format!("{name}/{p}: a record past end {end}")))
                    }
                    Err(e) => panic!("{}", ctx(format!("{name}/{p}: read {off} failed: {e}"))),
                }
            }
            // A torn tail is cut only past what was acknowledged, at the end.
            for t in report
                .torn_tails
                .iter()
                .filter(|t| t.stream == *name && t.priority == p)
            {
                assert_eq!(
                    t.first_lost_offset,
                    end,
                    "{}",
                    ctx(format!("{name}/{p}: torn tail's next offset\n{report}"))
                );
            }
            // Invariant 4: new sends continue at the end.
            let probe = expected(probe_seed, si, p, end);
            let got = stream
                .send_message(probe.message(p))
                .unwrap_or_else(|e| panic!("{}", ctx(format!("{name}/{p}: probe send: {e}"))));
            assert_eq!(got, end, "{}", ctx(format!("{name}/{p}: probe offset")));
            writers.begin(bucket, end, probe_seed);
            let back = stream
                .read_priority(p, end)
                .expect("read probe")
                .expect("probe present");
            assert_eq!(back.payload(), probe.payload.as_slice());
            ends.insert(bucket, end + 1);
        }
    }
    store.close().expect("close after check");
    ends
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

fn child_command(dir: &Path, seed: u64, never: bool) -> Command {
    let mut cmd = rerun("kill9_child");
    if never {
        cmd.env(CHILD_NEVER_ENV, "1");
    }
    cmd.env(CHILD_ENV, dir)
        .env(CHILD_SEED_ENV, seed.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[test]
fn kill9_loop() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let iters = env_u64("SPOOL_KILL9_ITERS").unwrap_or(100) as u32;
    let seed = env_u64("SPOOL_KILL9_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock");
        mix(t.as_nanos() as u64 ^ std::process::id() as u64)
    });
    println!("kill9: seed {seed} ({iters} iterations); replay with SPOOL_KILL9_SEED={seed}");
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut dir = tmp.path().to_path_buf();
    let mut writers = Writers::default();
    let mut ends: BTreeMap<(usize, u8), u64> = BTreeMap::new();
    let mut totals = Totals::default();
    // How long `Store::open` takes in the child, to aim kills into it.
    let mut open_time = Duration::from_millis(2);
    for iter in 0..iters {
        if iter % GENERATIONS_PER_STORE == 0 {
            // A fresh store now and then, so that checking everything after each kill
            // costs the same in a long run. The previous one passed every check.
            if iter > 0 {
                std::fs::remove_dir_all(&dir).expect("remove the previous store");
            }
            dir = tmp.path().join(format!("store-{iter}"));
            writers = Writers::default();
            ends.clear();
            for (si, (_, levels)) in STREAMS.iter().enumerate() {
                for p in 0..*levels {
                    ends.insert((si, p), 0);
                }
            }
        }
        let child_seed = rng.next();
        for (&bucket, &end) in &ends {
            writers.begin(bucket, end, child_seed);
        }
        let never = rng.chance(20);
        totals.never += never as u32;
        let mut child = Reaper(
            child_command(&dir, child_seed, never)
                .spawn()
                .expect("spawn child"),
        );
        let stdout = child.0.stdout.take().expect("stdout");
        let mut stderr = child.0.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ev) = parse(&line) {
                    if tx.send(ev).is_err() {
                        break;
                    }
                }
            }
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut seen = Seen::default();
        // Pick the moment to kill.
        let mode = rng.below(100);
        if mode < 3 {
            // Right after spawning: before or during the child's start-up.
            std::thread::sleep(Duration::from_micros(rng.below(3000)));
        } else if mode < 16 {
            // During Store::open.
            seen.wait(&rx, false);
            let us = open_time.as_micros().max(1) as u64;
            std::thread::sleep(Duration::from_micros(rng.below(us)));
        } else {
            seen.wait(&rx, true);
            let us = if mode < 30 {
                rng.below(2_000)
            } else {
                1_000 + rng.below(60_000)
            };
            std::thread::sleep(Duration::from_micros(us));
        }
        let _ = child.0.kill(); // SIGKILL; fails only if the child already exited
        let status = child.0.wait().expect("wait for child");
        reader.join().expect("reader thread");
        // Every line the child wrote before it died is still in the pipe.
        for ev in rx.try_iter() {
            seen.take(ev);
        }
        let errors = err_reader.join().expect("stderr thread");
        match status.signal() {
            Some(9) => {}
            _ if status.success() && seen.done => totals.finished += 1,
            _ => panic!(
                "iteration {iter} (seed {seed}): the child failed on its own ({status}):\n{errors}"
            ),
        }
        match (seen.opening, seen.ready) {
            (false, _) => totals.killed_before_open += 1,
            (true, None) => totals.killed_in_open += 1,
            // Smooth the estimate of how long open takes.
            (true, Some(d)) => open_time = (open_time * 3 + d) / 4,
        }
        totals.acked += seen.acked_count;
        for (bucket, max) in &seen.acked {
            // Offsets acknowledged by this child are above the previous end.
            assert!(
                *max >= ends[bucket],
                "iteration {iter}: child acknowledged offset {max} below start {}",
                ends[bucket]
            );
        }
        let mut all_acked = seen.acked;
        for (bucket, end) in &ends {
            if *end > 0 {
                // The parent's earlier probe send at end - 1 was acknowledged too.
                let m = all_acked.entry(*bucket).or_insert(end - 1);
                *m = (*m).max(end - 1);
            }
        }
        let probe_seed = mix(child_seed ^ 0x9a7e);
        ends = check_store(
            &dir,
            iter,
            &all_acked,
            &mut writers,
            probe_seed,
            &mut totals,
        );
    }
    let elapsed = started.elapsed();
    println!(
        "kill9: {iters} iterations ({} with Durability::Never) in {:.1} s: {} killed during open, {} before open, {} \
         finished unkilled; {} offsets acknowledged; {} torn tails and {} incomplete streams recovered; {} records checked",
        totals.never,
        elapsed.as_secs_f64(),
        totals.killed_in_open,
        totals.killed_before_open,
        totals.finished,
        totals.acked,
        totals.torn_tails,
        totals.removed_streams,
        totals.records_checked,
    );
    // The loop must really have killed children mid-work, or it tested nothing.
    assert!(
        iters < 20 || totals.finished < iters / 2,
        "most children finished before being killed"
    );
}
