//! Running the `sluice` binary in tests: with stdin, a deadline, and output helpers.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sluice_tests::TestBroker;

/// No test command should take this long; past it, the child is killed and the test fails
/// rather than hangs.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Starts `sluice ARGS` with `stdin` piped in (then closed).
pub fn spawn(args: &[&str], stdin: &[u8]) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // A writer thread, so a child that does not read all of stdin cannot block the test.
    thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    child
}

/// Waits for `child` at most `deadline`; kills it and panics past that.
pub fn wait(mut child: Child, deadline: Duration, what: &str) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "`sluice {what}` still running after {deadline:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Runs `sluice ARGS` with `stdin` and waits for it (at most [`DEADLINE`]).
pub fn sluice(args: &[&str], stdin: &[u8]) -> Output {
    wait(spawn(args, stdin), DEADLINE, &args.join(" "))
}

/// Like [`sluice`], and fails the test unless it succeeded.
pub fn sluice_ok(args: &[&str], stdin: &[u8]) -> Output {
    let out = sluice(args, stdin);
    assert!(
        out.status.success(),
        "`sluice {}` failed with {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stdout as text lines.
pub fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Stdout as JSON lines.
pub fn json_lines(out: &Output) -> Vec<Value> {
    lines(out)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Checks that a failed command said why on exactly one line, in sluice's format.
pub fn assert_one_line_error(out: &Output, contains: &str) {
    assert!(!out.status.success(), "expected a failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line of error, got:\n{err}");
    assert!(err.starts_with("sluice: error: "), "{err}");
    assert!(
        err.contains(contains),
        "{err:?} should mention {contains:?}"
    );
}

/// Creates `topic` with `partitions` partitions and waits until each has a leader.
pub fn create_topic(broker: &TestBroker, topic: &str, partitions: i32) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(sluice_tests::create_topic_with_rdkafka(
            &broker.bootstrap(),
            topic,
            partitions,
        ));
}
