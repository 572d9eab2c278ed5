//! `sluice demo` runs the whole pipeline on its embedded mock cluster and checks its own
//! result: every event copied exactly once.
#![allow(clippy::unwrap_used)]

mod support;

use support::{lines, sluice_ok};

#[test]
fn demo_copies_a_click_stream_exactly_once_with_nothing_installed() {
    let out = sluice_ok(&["demo", "--records", "20000", "--partitions", "3"], b"");
    let lines = lines(&out);
    let starts: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        starts,
        ["cluster", "topics", "produced", "copied", "verified"],
        "{lines:?}"
    );
    assert!(
        lines[2].starts_with("produced    20000 click events"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("copied      20000 exactly once"),
        "{}",
        lines[3]
    );
    assert!(
        lines[4].contains("20000 events read back under read_committed"),
        "{}",
        lines[4]
    );
}
