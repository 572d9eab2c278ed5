//! `sluice produce --transactional-id ID --txn-size N` writes in transactions of N records:
//! read_committed readers see every record, and the mock saw one EndTxn per transaction.
#![allow(clippy::unwrap_used)]

mod support;

use sluice_mock::{ApiKey, MockCluster, MockConfig};
use support::{lines, sluice_ok};

#[test]
fn records_are_written_in_transactions_of_n() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cluster = rt
        .block_on(MockCluster::start(MockConfig::with_brokers(3)))
        .unwrap();
    cluster.create_topic("txn-lines", 2);
    let b = cluster.bootstrap();
    let input: String = (0..25).map(|i| format!("line {i}\n")).collect();
    sluice_ok(
        &[
            "produce",
            "-b",
            &b,
            "-t",
            "txn-lines",
            "--transactional-id",
            "lines",
            "--txn-size",
            "10",
        ],
        input.as_bytes(),
    );
    assert_eq!(cluster.requests_seen(ApiKey::EndTxn), 3, "10 + 10 + 5");
    let out = sluice_ok(
        &[
            "consume",
            "-b",
            &b,
            "-t",
            "txn-lines",
            "-e",
            "--isolation",
            "read_committed",
        ],
        b"",
    );
    let mut read = lines(&out);
    read.sort_by_key(|l| l[5..].parse::<u32>().unwrap());
    let expected: Vec<String> = (0..25).map(|i| format!("line {i}")).collect();
    assert_eq!(read, expected);
}
