//! Partitioner: Java-compatible murmur2 placement and sticky partitioning of unkeyed records.

use std::collections::HashSet;

use sluice_client::producer::partitioner::{
    key_partition, murmur2, to_positive, Partitioner, StickyPartitioner,
};

/// Kafka's `UtilsTest.testMurmur2` (clients/src/test/java/org/apache/kafka/common/utils).
#[test]
fn murmur2_matches_java_utils_test() {
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58897971,
        ),
        (b"abc", 479470107), // Java: new byte[] {'a', 'b', 'c'}
    ];
    for (key, java) in cases {
        assert_eq!(
            murmur2(key) as i32,
            java,
            "{}",
            String::from_utf8_lossy(key)
        );
    }
}

/// librdkafka's `unittest_murmur2` (src/rdmurmur2.c), which checks against Java: word-aligned
/// and unaligned inputs, and the empty key (librdkafka's `murmur2` hashes a null key as empty).
#[test]
fn murmur2_matches_librdkafka_unit_test() {
    let unaligned = "PreAmbleWillBeRemoved,ThePrePartThatIs";
    let cases: [(&str, u32); 11] = [
        ("kafka", 0xd067cf64),
        ("giberish123456789", 0x8f552b0c),
        ("1234", 0x9fc97b14),
        ("234", 0xe7c009ca),
        ("34", 0x873930da),
        ("4", 0x5a4b5ca1),
        (unaligned, 0x78424f1c),
        (&unaligned[1..], 0x4a62b377),
        (&unaligned[2..], 0xe0e4e09e),
        (&unaligned[3..], 0x62b8b43f),
        ("", 0x106e08d9),
    ];
    for (key, expected) in cases {
        assert_eq!(murmur2(key.as_bytes()), expected, "{key:?}");
    }
}

/// Bytes >= 0x80: Java masks each byte with `& 0xff`, so nothing is sign-extended. Values from
/// Kafka's `Utils.murmur2` body run on OpenJDK 17.
#[test]
fn murmur2_high_bytes_are_unsigned() {
    let cases: [(&[u8], i32); 7] = [
        (&[0xff], -311467685),
        (&[0x80, 0x81], 1642145146),
        (&[0xfe, 0xfd, 0xfc], -1973149693),
        (&[0xff, 0xff, 0xff, 0xff], 644171429),
        (&[0x00, 0x80, 0xff, 0x7f, 0xc3, 0xa9], 665721258),
        ("ключ".as_bytes(), 2122343024),
        ("日本語キー".as_bytes(), 1445825182),
    ];
    for (key, java) in cases {
        assert_eq!(murmur2(key) as i32, java, "{key:02x?}");
    }
}

#[test]
fn to_positive_clears_the_sign_bit() {
    assert_eq!(to_positive(-1), i32::MAX);
    assert_eq!(to_positive(i32::MIN), 0);
    assert_eq!(to_positive(42), 42);
    assert_eq!(to_positive(-973932308), -973932308 & 0x7fffffff);
}

/// kafka-python's `test_murmur2_java_compatibility`: partitions out of 1000 "compared with
/// output from Kafka's org.apache.kafka.clients.producer.Partitioner".
#[test]
fn key_partition_matches_java_for_1000_partitions() {
    let cases: [(&[u8], i32); 6] = [
        (b"", 681),
        (b"a", 524),
        (b"ab", 434),
        (b"abc", 107),
        (b"123456789", 566),
        (b"\x00 ", 742),
    ];
    for (key, partition) in cases {
        assert_eq!(key_partition(key, 1000), Some(partition), "{key:?}");
    }
}

/// `toPositive(murmur2(key)) % n` for 3, 6 and 10 partitions (computed with Java's formula on
/// OpenJDK 17).
#[test]
fn key_partition_for_small_topics() {
    let cases: [(&str, [i32; 3]); 6] = [
        ("key-0", [1, 1, 1]),
        ("key-1", [0, 0, 0]),
        ("key-2", [2, 2, 2]),
        ("user-42", [1, 4, 0]),
        ("order-1001", [0, 0, 8]),
        ("", [0, 3, 1]),
    ];
    for (key, expected) in cases {
        let got = [3, 6, 10].map(|n| key_partition(key.as_bytes(), n));
        assert_eq!(got, expected.map(Some), "{key:?}");
    }
    assert_eq!(key_partition(b"k", 0), None);
    assert_eq!(key_partition(b"k", -3), None);
}

#[test]
fn keyed_records_ignore_availability() {
    // A leader election must not move a key: keyed placement uses all partitions.
    let mut state = StickyPartitioner::with_seed(16384, 7);
    for kind in [Partitioner::Murmur2, Partitioner::Murmur2Random] {
        let p = kind.partition(&mut state, "t", Some(b"order-1001"), 10, &[0, 1, 2]);
        assert_eq!(p, Some(8));
    }
}

#[test]
fn sticky_holds_until_batch_size_then_moves_elsewhere() {
    let mut sticky = StickyPartitioner::with_seed(100, 1);
    let mut previous = None;
    for _ in 0..50 {
        let first = sticky.partition("t", 6, &[]).expect("partitions");
        assert!((0..6).contains(&first));
        assert_ne!(
            Some(first),
            previous,
            "must not pick the partition it just left"
        );
        // 99 bytes: still below batch.size, every record sticks.
        for _ in 0..9 {
            assert_eq!(sticky.partition("t", 6, &[]), Some(first));
            sticky.on_append("t", first, 11);
        }
        assert_eq!(sticky.partition("t", 6, &[]), Some(first));
        sticky.on_append("t", first, 1); // 100 bytes: switch
        previous = Some(first);
    }
}

#[test]
fn sticky_moves_on_new_batch_and_spreads_over_all_partitions() {
    let mut sticky = StickyPartitioner::with_seed(usize::MAX, 2);
    let mut seen = HashSet::new();
    let mut previous = None;
    for _ in 0..200 {
        let p = sticky.partition("t", 4, &[]).expect("partitions");
        assert_ne!(Some(p), previous);
        seen.insert(p);
        // A new batch on another partition changes nothing.
        sticky.on_new_batch("t", (p + 1) % 4);
        assert_eq!(sticky.partition("t", 4, &[]), Some(p));
        sticky.on_new_batch("t", p);
        previous = Some(p);
    }
    assert_eq!(seen.len(), 4);
}

#[test]
fn sticky_only_uses_available_partitions() {
    let mut sticky = StickyPartitioner::with_seed(10, 3);
    let available = [1, 4, 7];
    for _ in 0..100 {
        let p = sticky.partition("t", 8, &available).expect("partitions");
        assert!(available.contains(&p));
        sticky.on_append("t", p, 10);
    }
    // Its partition losing its leader moves it at once.
    let mut sticky = StickyPartitioner::with_seed(usize::MAX, 4);
    let p = sticky.partition("t", 8, &available).expect("partitions");
    let rest: Vec<i32> = available.iter().copied().filter(|&q| q != p).collect();
    let q = sticky.partition("t", 8, &rest).expect("partitions");
    assert!(rest.contains(&q));
}

#[test]
fn sticky_with_one_partition_and_per_topic_state() {
    let mut sticky = StickyPartitioner::with_seed(1, 5);
    for _ in 0..10 {
        assert_eq!(sticky.partition("one", 1, &[]), Some(0));
        sticky.on_append("one", 0, 5);
    }
    assert_eq!(sticky.partition("only-3", 8, &[3]), Some(3));
    assert_eq!(sticky.partition("none", 0, &[]), None);
    // Topics stick independently.
    let mut sticky = StickyPartitioner::with_seed(usize::MAX, 6);
    let a = sticky.partition("a", 100, &[]);
    let b = sticky.partition("b", 100, &[]);
    sticky.on_new_batch("b", b.expect("partitions"));
    assert_eq!(sticky.partition("a", 100, &[]), a);
}

#[test]
fn same_seed_same_choices() {
    let run = |seed| {
        let mut sticky = StickyPartitioner::with_seed(1, seed);
        (0..20)
            .map(|_| {
                let p = sticky.partition("t", 12, &[]).expect("partitions");
                sticky.on_append("t", p, 1);
                p
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(run(9), run(9));
}

#[test]
fn null_keys_per_strategy() {
    let mut state = StickyPartitioner::with_seed(usize::MAX, 8);
    // Java default: null keys stick.
    let p = Partitioner::default().partition(&mut state, "t", None, 10, &[]);
    for _ in 0..20 {
        assert_eq!(
            Partitioner::Murmur2.partition(&mut state, "t", None, 10, &[]),
            p
        );
    }
    // murmur2_random and random: each record independently, among available partitions.
    for kind in [Partitioner::Murmur2Random, Partitioner::Random] {
        let picks: HashSet<_> = (0..200)
            .filter_map(|_| kind.partition(&mut state, "t", None, 10, &[2, 5, 9]))
            .collect();
        assert_eq!(picks, HashSet::from([2, 5, 9]));
    }
    // Random ignores keys.
    let picks: HashSet<_> = (0..200)
        .filter_map(|_| Partitioner::Random.partition(&mut state, "t", Some(b"k"), 3, &[]))
        .collect();
    assert_eq!(picks.len(), 3);
}
