//! Failures end in one `sluice: error: ...` line and a non-zero exit, in bounded time: bad
//! flags, unknown topics and partitions, a broker that refuses connections and one that
//! accepts them but never answers.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::TestBroker;
use support::{assert_one_line_error, create_topic, sluice, spawn, wait};

/// The brief: an unreachable broker fails within 15 s (the connection setup timeout is 10 s).
const UNREACHABLE_BOUND: Duration = Duration::from_secs(15);

/// Every broker-facing command, with `-b BROKER`.
fn commands(broker: &str) -> Vec<Vec<String>> {
    [
        vec!["produce", "-t", "t"],
        vec!["consume", "-t", "t", "-e"],
        vec!["bench", "produce", "-t", "t", "--messages", "10"],
        vec!["bench", "consume", "-t", "t", "--messages", "10"],
        vec!["metadata"],
    ]
    .into_iter()
    .map(|c| {
        let mut c: Vec<String> = c.into_iter().map(str::to_owned).collect();
        c.extend(["-b".to_owned(), broker.to_owned()]);
        c
    })
    .collect()
}

fn run_timed(args: &[String], stdin: &[u8]) -> (std::process::Output, Duration) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let out = wait(spawn(&args, stdin), UNREACHABLE_BOUND * 2, &args.join(" "));
    (out, start.elapsed())
}

#[test]
fn refused_connections_fail_at_once() {
    for args in commands("127.0.0.1:1") {
        let (out, took) = run_timed(&args, b"x\n");
        assert_one_line_error(&out, "127.0.0.1:1");
        assert!(took < UNREACHABLE_BOUND, "{args:?} took {took:?}");
    }
}

#[test]
fn a_broker_that_never_answers_fails_within_the_bound() {
    // Accepts connections (the kernel does, from the backlog) and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let runs: Vec<_> = commands(&addr)
        .into_iter()
        .map(|args| {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            (args.clone(), Instant::now(), spawn(&argv, b"x\n"))
        })
        .collect();
    // In parallel: each waits out the 10 s setup timeout.
    for (args, start, child) in runs {
        let out = wait(child, UNREACHABLE_BOUND * 2, &args.join(" "));
        let took = start.elapsed();
        assert_one_line_error(&out, "timed out");
        assert!(took < UNREACHABLE_BOUND, "{args:?} took {took:?}");
    }
    drop(silent);
}

#[test]
fn unknown_topics_and_partitions_are_one_line_errors() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    for args in [
        vec!["consume", "-b", &b, "-t", "nosuch"],
        vec![
            "consume", "-b", &b, "-t", "nosuch", "-e", "--format", "json",
        ],
        vec![
            "bench",
            "consume",
            "-b",
            &b,
            "-t",
            "nosuch",
            "--messages",
            "5",
        ],
    ] {
        assert_one_line_error(&sluice(&args, b""), "topic \"nosuch\" does not exist");
    }
    create_topic(&broker, "two", 2);
    assert_one_line_error(
        &sluice(&["consume", "-b", &b, "-t", "two", "-p", "2"], b""),
        "partition 2 does not exist",
    );
    assert_one_line_error(
        &sluice(&["produce", "-b", &b, "-t", "two", "-p", "7"], b"x\n"),
        "partition 7 does not exist",
    );
    // Tansu creates topics on demand for producers (as Kafka does with
    // auto.create.topics.enable), so an unknown topic is no error for `produce` here.
}

#[test]
fn bad_flags_fail_before_connecting() {
    let b = "127.0.0.1:1";
    for args in [
        vec!["consume", "-b", b],
        vec!["consume", "-b", b, "-t", "t", "-o", "yesterday"],
        vec!["consume", "-b", b, "-t", "t", "-o", "stored"],
        vec!["consume", "-b", b, "-t", "t", "--isolation", "dirty"],
        vec!["consume", "-b", b, "-t", "t", "--format", "xml"],
        vec!["consume", "-b", b, "-t", "t", "-c", "-1"],
        vec!["consume", "-b", b, "-t", "t", "-c", "0"],
        vec!["produce", "-b", b, "-t", "t", "-z", "brotli"],
        vec!["produce", "-b", b, "-t", "t", "-K", ""],
        vec!["produce", "-b", b, "-t", "t", "-X", "novalue"],
        vec!["produce", "-t", "t"],
        vec!["bench", "produce", "-b", b, "-t", "t"],
        vec!["bench", "sideways", "-b", b, "-t", "t", "--messages", "1"],
    ] {
        let out = sluice(&args, b"");
        assert_eq!(
            out.status.code(),
            Some(2),
            "clap's usage error for {args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    // Flags clap accepts but the client config refuses: still one line, before connecting.
    assert_one_line_error(
        &sluice(
            &["produce", "-b", b, "-t", "t", "-X", "linger.ms=soon"],
            b"",
        ),
        "linger.ms",
    );
    assert_one_line_error(
        &sluice(&["consume", "-b", b, "-t", "t", "-X", "linger.ms=5"], b""),
        "linger.ms",
    );
}

#[test]
fn a_record_the_producer_refuses_is_a_one_line_error() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&broker, "small", 1);
    let mut input = b"fits\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 4000));
    let out = sluice(
        &[
            "produce",
            "-b",
            &b,
            "-t",
            "small",
            "-X",
            "max.request.size=2000",
        ],
        &input,
    );
    assert_one_line_error(&out, "record 2 not sent");
    assert!(String::from_utf8_lossy(&out.stderr).contains("MESSAGE_TOO_LARGE"));
    // What was sent before the refusal was still delivered.
    let read = sluice(&["consume", "-b", &b, "-t", "small", "-e"], b"");
    assert_eq!(String::from_utf8_lossy(&read.stdout), "fits\n");
}

#[test]
fn a_failed_delivery_is_a_one_line_error() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&broker, "doomed", 1);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["produce", "-b", &b, "-t", "doomed"])
        .args([
            "-X",
            "request.timeout.ms=1000",
            "-X",
            "delivery.timeout.ms=3000",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"first\n").unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    // kill -9 the broker, then send one more record and end the input.
    drop(broker);
    stdin.write_all(b"second\n").unwrap();
    drop(stdin);
    let out = wait(child, Duration::from_secs(30), "produce to a dead broker");
    assert_one_line_error(&out, "not delivered to doomed");
}
