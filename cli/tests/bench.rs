//! `sluice bench produce` then `bench consume` with a small N: each prints its final line with
//! real numbers, and no progress bar when stderr is not a terminal.
#![allow(clippy::unwrap_used)]

mod support;

use sluice_tests::TestBroker;
use support::{create_topic, lines, sluice_ok};

/// The numbers of `N msgs in T s: X msgs/s, Y MB/s, client CPU U s user + S s sys`.
fn parse(line: &str) -> [f64; 6] {
    let words: Vec<&str> = line.split_whitespace().collect();
    let shape = [
        (1, "msgs"),
        (2, "in"),
        (4, "s:"),
        (6, "msgs/s,"),
        (8, "MB/s,"),
        (9, "client"),
        (10, "CPU"),
        (12, "s"),
        (13, "user"),
        (14, "+"),
        (16, "s"),
        (17, "sys"),
    ];
    assert_eq!(words.len(), 18, "{line}");
    for (i, word) in shape {
        assert_eq!(words[i], word, "{line}");
    }
    [0, 3, 5, 7, 11, 15].map(|i| {
        words[i]
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("{e}: {line}"))
    })
}

#[test]
fn bench_produce_then_consume_print_their_numbers() {
    let broker = TestBroker::start();
    let b = broker.bootstrap();
    create_topic(&broker, "bench", 3);
    let produced = sluice_ok(
        &[
            "bench",
            "produce",
            "-b",
            &b,
            "-t",
            "bench",
            "--messages",
            "3000",
            "--size",
            "200",
            "-z",
            "lz4",
        ],
        b"",
    );
    assert!(produced.stderr.is_empty(), "no progress bar into a pipe");
    let line = lines(&produced);
    assert_eq!(line.len(), 1, "{line:?}");
    let [n, secs, rate, mb, user, sys] = parse(&line[0]);
    assert_eq!(n, 3000.0);
    assert!(secs > 0.0 && rate > 0.0 && mb > 0.0, "{}", line[0]);
    // The MB/s figure is the payload's: 200 bytes a record.
    assert!(
        (mb - rate * 200.0 / 1e6).abs() < 0.1 + 0.01 * mb,
        "{}",
        line[0]
    );
    assert!(user >= 0.0 && sys >= 0.0);

    let consumed = sluice_ok(
        &[
            "bench",
            "consume",
            "-b",
            &b,
            "-t",
            "bench",
            "--messages",
            "3000",
        ],
        b"",
    );
    assert!(consumed.stderr.is_empty());
    let line = lines(&consumed);
    let [n, secs, rate, mb, ..] = parse(&line[0]);
    assert_eq!(n, 3000.0);
    assert!(secs > 0.0 && rate > 0.0 && mb > 0.0, "{}", line[0]);

    // The records are all there, keyless, of the size asked.
    let json = sluice_ok(
        &[
            "consume", "-b", &b, "-t", "bench", "-e", "--format", "json", "-c", "5",
        ],
        b"",
    );
    for record in support::json_lines(&json) {
        assert_eq!(record["key"], serde_json::Value::Null);
        assert_eq!(record["value"].as_str().unwrap().len(), 200);
        assert_eq!(record["compression"], "lz4");
    }
}
