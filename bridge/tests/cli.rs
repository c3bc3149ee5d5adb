//! The binary's settings: hostile durations are clear errors (exit 1 and
//! a message naming the setting), never a panic or a hang. Checked before
//! connecting, so no server is needed.

use std::process::Command;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_spool-bridge"))
        .arg("--store")
        .arg(dir.path())
        // Nothing listens there: a run that got past the checks would
        // wait for it (the test would hang, not pass).
        .args(["--nats", "nats://127.0.0.1:9"])
        .args(args)
        .output()
        .expect("run spool-bridge");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn hostile_durations_are_refused_with_a_message() {
    let out = ["out", "--stream", "s", "--subject", "x"];
    let inb = ["in", "--subject", "x", "--stream", "s"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            [&["--request-timeout", "0"][..], &out].concat(),
            "--request-timeout",
        ),
        (
            [&["--request-timeout", "876000h"][..], &out].concat(),
            "--request-timeout",
        ),
        (
            [&["--request-timeout", "99999999999999999999s"][..], &out].concat(),
            "--request-timeout",
        ),
        (
            [&["--request-timeout", "5 parsecs"][..], &out].concat(),
            "--request-timeout",
        ),
        ([&inb[..], &["--ack-wait", "0"]].concat(), "--ack-wait"),
        (
            [&inb[..], &["--ack-wait", "876000h"]].concat(),
            "--ack-wait",
        ),
        ([&inb[..], &["--ack-wait", "500ms"]].concat(), "--ack-wait"),
    ];
    for (args, setting) in cases {
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(setting) && stderr.contains("invalid setting"),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
