use proptest::prelude::*;

use super::*;
use crate::group::assignor::test_util::tp;

/// Hex digits to bytes; whitespace is ignored and `#` starts a comment to the end of the line.
fn hex(s: &str) -> Bytes {
    let digits: Vec<u8> = s
        .lines()
        .flat_map(|line| line.split('#').next().unwrap_or("").bytes())
        .filter(u8::is_ascii_hexdigit)
        .map(|c| match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => c - b'A' + 10,
        })
        .collect();
    digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// The subscription of the golden vectors: topics given unsorted, user data, one owned topic.
fn golden_subscription() -> Subscription {
    Subscription {
        member_id: "m".to_owned(),
        group_instance_id: Some("i".to_owned()),
        topics: vec!["foo".to_owned(), "bar".to_owned()],
        owned_partitions: tp(&[("foo", &[2, 0])]),
        generation_id: 5,
        rack_id: Some("r1".to_owned()),
        user_data: Some(Bytes::from_static(&[1, 2])),
    }
}

// Subscription => version:INT16 topics:[STRING] user_data:NULLABLE_BYTES
//   owned_partitions:[topic:STRING partitions:[INT32]] (v1+) generation_id:INT32 (v2+)
//   rack_id:NULLABLE_STRING (v3+); all non-flexible (no tagged fields, no compact lengths).
const SUB_V0_BODY: &str = "
    00000002 0003 626172 0003 666f6f   # topics: 2, \"bar\", \"foo\" (sorted)
    00000002 0102                      # user_data: 2 bytes";
const SUB_OWNED: &str = "
    00000001 0003 666f6f               # owned_partitions: 1 topic, \"foo\"
    00000002 00000000 00000002         # partitions: 2, [0, 2]";
const SUB_GENERATION: &str = "00000005";
const SUB_RACK: &str = "0002 7231"; // "r1"

fn golden_subscription_bytes(version: i16) -> Bytes {
    let mut parts = vec![format!("{version:04x}"), SUB_V0_BODY.to_owned()];
    if version >= 1 {
        parts.push(SUB_OWNED.to_owned());
    }
    if version >= 2 {
        parts.push(SUB_GENERATION.to_owned());
    }
    if version >= 3 {
        parts.push(SUB_RACK.to_owned());
    }
    hex(&parts.join("\n"))
}

/// What a decoder sees of `golden_subscription()` written at `version`.
fn golden_subscription_at(version: i16) -> Subscription {
    let full = golden_subscription();
    Subscription {
        topics: vec!["bar".to_owned(), "foo".to_owned()],
        owned_partitions: if version >= 1 {
            tp(&[("foo", &[0, 2])])
        } else {
            TopicPartitions::new()
        },
        generation_id: if version >= 2 { 5 } else { -1 },
        rack_id: if version >= 3 {
            full.rack_id.clone()
        } else {
            None
        },
        ..full
    }
}

// Assignment => version:INT16 assigned_partitions:[topic:STRING partitions:[INT32]]
//   user_data:NULLABLE_BYTES; the same body at every version 0-3.
const ASSIGNMENT_BODY: &str = "
    00000002                           # assigned_partitions: 2 topics
    0003 626172 00000001 00000007      # \"bar\": [7]
    0003 666f6f 00000002 00000000 00000001   # \"foo\": [0, 1]
    ffffffff                           # user_data: null
";

#[test]
fn subscription_golden_bytes_every_version() {
    for version in 0..=3 {
        let bytes = encode_subscription(&golden_subscription(), version).expect("encodes");
        assert_eq!(bytes, golden_subscription_bytes(version), "v{version}");
        let decoded = decode_subscription("m", Some("i"), bytes).expect("decodes");
        assert_eq!(decoded, golden_subscription_at(version), "v{version}");
    }
}

#[test]
fn subscription_null_user_data_and_rack() {
    let sub = Subscription {
        topics: vec!["t".to_owned()],
        generation_id: -1,
        ..Subscription::default()
    };
    let bytes = encode_subscription(&sub, 3).expect("encodes");
    // v3, topics ["t"], null user data, no owned partitions, generation -1, null rack.
    assert_eq!(
        bytes,
        hex("0003 00000001 0001 74 ffffffff 00000000 ffffffff ffff")
    );
    assert_eq!(decode_subscription("", None, bytes).expect("decodes"), sub);
}

#[test]
fn librdkafka_subscription_is_read() {
    // What librdkafka's rd_kafka_consumer_protocol_member_metadata_new writes for a fresh
    // member: v3, its topics, empty (not null) user data, no owned partitions, generation -1
    // and an empty rack (taken as none, as Java does).
    let bytes = hex("0003 00000001 0001 74 00000000 00000000 ffffffff 0000");
    let sub = decode_subscription("rd", None, bytes).expect("decodes");
    assert_eq!(sub.topics, vec!["t".to_owned()]);
    assert_eq!(sub.user_data, Some(Bytes::new()));
    assert_eq!(sub.generation_id, -1);
    assert_eq!(sub.rack_id, None);
}

#[test]
fn assignment_golden_bytes_every_version() {
    let partitions = tp(&[("foo", &[1, 0]), ("bar", &[7]), ("empty", &[])]);
    for version in 0..=3 {
        let bytes = encode_assignment(&partitions, None, version).expect("encodes");
        assert_eq!(bytes, hex(&format!("{version:04x} {ASSIGNMENT_BODY}")));
        let (decoded, user_data) = decode_assignment(bytes).expect("decodes");
        assert_eq!(decoded, tp(&[("bar", &[7]), ("foo", &[0, 1])]));
        assert_eq!(user_data, None);
    }
    let with_data = encode_assignment(
        &TopicPartitions::new(),
        Some(&Bytes::from_static(&[0, 0, 0, 9])),
        3,
    )
    .expect("encodes");
    assert_eq!(with_data, hex("0003 00000000 00000004 00000009"));
}

#[test]
fn newer_versions_are_read_as_the_highest_known_one() {
    // A v4 subscription: the v3 fields, then whatever v4 appends (here 6 bytes).
    let mut v4 = golden_subscription_bytes(3).to_vec();
    v4[..2].copy_from_slice(&4i16.to_be_bytes());
    v4.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0, 1]);
    let decoded = decode_subscription("m", Some("i"), Bytes::from(v4)).expect("decodes");
    assert_eq!(decoded, golden_subscription_at(3));

    let assignment = hex(&format!("7fff {ASSIGNMENT_BODY} 0102"));
    let (partitions, _) = decode_assignment(assignment).expect("decodes");
    assert_eq!(partitions, tp(&[("bar", &[7]), ("foo", &[0, 1])]));

    // Encoding above the highest version writes the highest, as Java does.
    let bytes = encode_subscription(&golden_subscription(), 9).expect("encodes");
    assert_eq!(bytes, golden_subscription_bytes(3));
}

#[test]
fn duplicate_topics_in_the_bytes_are_merged() {
    let bytes = hex("0000 00000002 0001 74 00000001 00000001 0001 74 00000001 00000000 ffffffff");
    let (partitions, _) = decode_assignment(bytes).expect("decodes");
    assert_eq!(partitions, tp(&[("t", &[0, 1])]));
}

#[test]
fn negative_versions_are_rejected() {
    let err = decode_subscription("m", None, hex("ffff 00000000 ffffffff"))
        .expect_err("negative version");
    assert!(matches!(
        err,
        Error::Protocol(sluice_protocol::Error::Invalid { .. })
    ));
    assert!(decode_assignment(hex("8000 00000000 ffffffff")).is_err());
    assert!(encode_subscription(&golden_subscription(), -1).is_err());
    assert!(encode_assignment(&TopicPartitions::new(), None, -1).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    for version in 0..=3 {
        let full = golden_subscription_bytes(version);
        for len in 0..full.len() {
            let err = decode_subscription("m", None, full.slice(..len));
            assert!(err.is_err(), "v{version} cut at {len} decoded: {err:?}");
        }
        let full = hex(&format!("{version:04x} {ASSIGNMENT_BODY}"));
        for len in 0..full.len() {
            assert!(
                decode_assignment(full.slice(..len)).is_err(),
                "cut at {len}"
            );
        }
    }
}

#[test]
fn huge_and_negative_lengths_are_errors() {
    let cases = [
        "0003 7fffffff 0001 74",                            // 2^31-1 topics
        "0003 00000001 7fff 74",                            // a 32 KiB topic name
        "0003 00000000 7fffffff 00",                        // 2 GiB of user data
        "0003 00000000 ffffffff 7fffffff",                  // 2^31-1 owned topics
        "0003 00000000 ffffffff 00000001 0001 74 7fffffff", // 2^31-1 partitions
        "0003 ffffffff ffffffff",                           // null topics array
        "0003 00000001 ffff ffffffff",                      // null topic name
        "0003 80000000 ffffffff",                           // negative array length
        "0003 00000000 fffffffe",                           // user data length -2
        "0003 00000000 ffffffff 00000000 00000001 7fff",    // rack name past the end
        "0003 00000001 0002 c328 ffffffff",                 // topic name not UTF-8
    ];
    for case in cases {
        let result = decode_subscription("m", None, hex(case));
        assert!(result.is_err(), "{case} decoded: {result:?}");
    }
    for case in [
        "0000 7fffffff",
        "0000 00000001 0001 74 7fffffff",
        "0000 00000000 7fffffff",
        "0000 ffffffff ffffffff",
    ] {
        assert!(decode_assignment(hex(case)).is_err(), "{case}");
    }
}

fn arb_subscription() -> impl Strategy<Value = Subscription> {
    let name = "[a-zA-Z0-9._-]{1,12}";
    (
        prop::collection::vec(name, 0..5),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        prop::collection::btree_map(name, prop::collection::vec(0i32..1000, 0..5), 0..4),
        any::<i32>(),
        prop::option::of("[a-z0-9-]{0,8}"),
    )
        .prop_map(
            |(topics, user_data, owned, generation_id, rack_id)| Subscription {
                member_id: "member".to_owned(),
                group_instance_id: None,
                topics,
                owned_partitions: owned,
                generation_id,
                rack_id,
                user_data: user_data.map(Bytes::from),
            },
        )
}

/// What survives encoding at `version`: sorted, deduplicated, fields the version lacks reset.
fn normalized(mut sub: Subscription, version: i16) -> Subscription {
    sub.topics.sort();
    sub.topics.dedup();
    sub.owned_partitions.retain(|_, p| !p.is_empty());
    for p in sub.owned_partitions.values_mut() {
        p.sort_unstable();
        p.dedup();
    }
    if version < 1 {
        sub.owned_partitions.clear();
    }
    if version < 2 {
        sub.generation_id = -1;
    }
    if version < 3 || sub.rack_id.as_deref() == Some("") {
        sub.rack_id = None;
    }
    sub
}

proptest! {
    #[test]
    fn subscription_round_trips(sub in arb_subscription(), version in 0i16..=3) {
        let bytes = encode_subscription(&sub, version).expect("encodes");
        let decoded = decode_subscription("member", None, bytes).expect("decodes");
        prop_assert_eq!(decoded, normalized(sub, version));
    }

    #[test]
    fn assignment_round_trips(
        sub in arb_subscription(),
        user_data in prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
        version in 0i16..=3,
    ) {
        let user_data = user_data.map(Bytes::from);
        let bytes = encode_assignment(&sub.owned_partitions, user_data.as_ref(), version)
            .expect("encodes");
        let (partitions, decoded_data) = decode_assignment(bytes).expect("decodes");
        prop_assert_eq!(partitions, normalized(sub, 1).owned_partitions);
        prop_assert_eq!(decoded_data, user_data);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_subscription("m", None, Bytes::from(bytes.clone()));
        let _ = decode_assignment(Bytes::from(bytes));
    }

    #[test]
    fn corrupted_golden_bytes_never_panic(
        version in 0i16..=3,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = golden_subscription_bytes(version).to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = decode_subscription("m", None, Bytes::from(bytes.clone()));
        let _ = decode_assignment(Bytes::from(bytes));
    }
}
