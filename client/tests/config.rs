//! Typed configs and `from_properties`, through the public API only: Java's defaults, every
//! accepted name and alias, errors that name what is wrong, and the rules between settings.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::Duration;

use sluice_client::config::{
    Acks, AdminConfig, Assignor, ClientCert, ClientConfig, Compression, ConsumerConfig,
    IsolationLevel, OffsetReset, Partitioner, Password, ProducerConfig, SaslConfig, SaslMechanism,
    SecurityConfig, SecurityProtocol, TlsConfig,
};
use sluice_client::Error;

const MIB: usize = 1024 * 1024;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `bootstrap.servers` plus `extra`, as owned pairs.
fn props(extra: &[(&str, &str)]) -> Vec<(String, String)> {
    std::iter::once(("bootstrap.servers", "localhost:9092"))
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn producer(extra: &[(&str, &str)]) -> ProducerConfig {
    ProducerConfig::from_properties(props(extra)).unwrap_or_else(|e| panic!("{extra:?}: {e}"))
}

fn consumer(extra: &[(&str, &str)]) -> ConsumerConfig {
    ConsumerConfig::from_properties(props(extra)).unwrap_or_else(|e| panic!("{extra:?}: {e}"))
}

fn client(extra: &[(&str, &str)]) -> ClientConfig {
    ClientConfig::from_properties(props(extra)).unwrap_or_else(|e| panic!("{extra:?}: {e}"))
}

/// The property and reason of a config error; panics on success or another error.
fn config_error<T: Debug>(result: sluice_client::Result<T>) -> (String, String) {
    match result {
        Err(Error::Config { property, reason }) => (property, reason),
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn producer_error(extra: &[(&str, &str)]) -> (String, String) {
    config_error(ProducerConfig::from_properties(props(extra)))
}

fn consumer_error(extra: &[(&str, &str)]) -> (String, String) {
    config_error(ConsumerConfig::from_properties(props(extra)))
}

#[test]
fn client_defaults_are_javas() {
    let c = ClientConfig::builder()
        .bootstrap("localhost:9092")
        .build()
        .expect("build");
    assert_eq!(c.bootstrap_servers(), ["localhost:9092"]);
    assert_eq!(c.client_id(), "sluice");
    assert_eq!(c.request_timeout(), ms(30_000));
    assert_eq!(c.connect_timeout(), ms(10_000));
    assert_eq!(c.reconnect_backoff(), ms(50));
    assert_eq!(c.reconnect_backoff_max(), ms(1_000));
    assert_eq!(c.retry_backoff(), ms(100));
    assert_eq!(c.retry_backoff_max(), ms(1_000));
    assert_eq!(c.metadata_max_age(), ms(300_000));
    assert_eq!(c.max_in_flight_per_connection(), 5);
    assert_eq!(c.max_response_size(), 100 * MIB);
    assert_eq!(c.security(), &SecurityConfig::Plaintext);
    assert_eq!(c, client(&[]));
}

#[test]
fn producer_defaults_are_javas() {
    let p = ProducerConfig::builder()
        .bootstrap("localhost:9092")
        .build()
        .expect("build");
    assert_eq!(p.acks(), Acks::All);
    assert_eq!(p.linger(), ms(5));
    assert_eq!(p.batch_size(), 16_384);
    assert_eq!(p.compression(), Compression::None);
    assert!(p.idempotence());
    assert_eq!(p.retries(), 2_147_483_647);
    assert_eq!(p.delivery_timeout(), ms(120_000));
    assert_eq!(p.buffer_memory(), 32 * MIB);
    assert_eq!(p.max_request_size(), MIB);
    assert_eq!(p.partitioner(), Partitioner::Murmur2);
    assert_eq!(p.sticky_partitioning_linger(), ms(10));
    assert_eq!(p.transactional_id(), None);
    assert_eq!(p.transaction_timeout(), ms(60_000));
    assert_eq!(p.client().max_in_flight_per_connection(), 5);
    assert_eq!(p, producer(&[]));
}

#[test]
fn consumer_defaults_are_javas() {
    let c = ConsumerConfig::builder()
        .bootstrap("localhost:9092")
        .build()
        .expect("build");
    assert_eq!(c.group_id(), None);
    assert_eq!(c.group_instance_id(), None);
    assert_eq!(c.isolation_level(), IsolationLevel::ReadUncommitted);
    assert_eq!(c.auto_offset_reset(), OffsetReset::Latest);
    assert_eq!(c.fetch_min_bytes(), 1);
    assert_eq!(c.fetch_max_bytes(), 50 * MIB);
    assert_eq!(c.max_partition_fetch_bytes(), MIB);
    assert_eq!(c.fetch_max_wait(), ms(500));
    assert_eq!(c.max_buffered_bytes(), 64 * MIB);
    assert!(c.check_crcs());
    // Auto-commit defaults to on, but there is no group to commit to.
    assert!(!c.auto_commit());
    assert_eq!(c.auto_commit_interval(), ms(5_000));
    assert_eq!(c.session_timeout(), ms(45_000));
    assert_eq!(c.heartbeat_interval(), ms(3_000));
    assert_eq!(c.max_poll_interval(), ms(300_000));
    assert_eq!(c.rebalance_timeout(), ms(300_000));
    assert_eq!(
        c.assignors(),
        [Assignor::Range, Assignor::CooperativeSticky]
    );
    assert_eq!(c.client_rack(), None);
    assert_eq!(c, consumer(&[]));
    assert!(consumer(&[("group.id", "g")]).auto_commit());
}

#[test]
fn admin_takes_the_client_settings() {
    let a = AdminConfig::from_properties(props(&[("client.id", "ops")])).expect("admin");
    assert_eq!(a.client().client_id(), "ops");
    assert_eq!(AdminConfig::from(a.client().clone()), a);
    let built = AdminConfig::builder()
        .bootstrap("h:1")
        .client_id("ops")
        .build()
        .expect("build");
    assert_eq!(built.client().bootstrap_servers(), ["h:1"]);
}

#[test]
fn bootstrap_servers_are_required_and_checked() {
    let (property, reason) = config_error(ProducerConfig::builder().build());
    assert_eq!(property, "bootstrap.servers");
    assert!(reason.contains("required"), "{reason}");

    let c = client(&[("bootstrap.servers", " k1:9092 , [::1]:9093,k3:1,")]);
    assert_eq!(c.bootstrap_servers(), ["k1:9092", "[::1]:9093", "k3:1"]);
    let c = ClientConfig::from_properties([("metadata.broker.list", "b:9092")]).expect("alias");
    assert_eq!(c.bootstrap_servers(), ["b:9092"]);

    for bad in ["k1", "k1:0", "k1:99999", "::1:9092", "PLAINTEXT://k1:9092"] {
        let (property, reason) =
            config_error(ClientConfig::from_properties([("bootstrap.servers", bad)]));
        assert_eq!(property, "bootstrap.servers");
        assert!(reason.contains(&format!("{bad:?}")), "{reason}");
    }
    let (property, _) = config_error(ClientConfig::from_properties([(
        "metadata.broker.list",
        "nope",
    )]));
    assert_eq!(
        property, "metadata.broker.list",
        "errors use the name as given"
    );
}

#[test]
fn every_client_property_parses() {
    let c = client(&[
        ("client.id", "app-1"),
        ("request.timeout.ms", "1000"),
        ("socket.connection.setup.timeout.ms", "2000"),
        ("reconnect.backoff.ms", "3"),
        ("reconnect.backoff.max.ms", "4"),
        ("retry.backoff.ms", "5"),
        ("retry.backoff.max.ms", "6"),
        ("metadata.max.age.ms", "7"),
        ("max.in.flight.requests.per.connection", "2"),
        ("receive.message.max.bytes", "123456"),
    ]);
    assert_eq!(c.client_id(), "app-1");
    assert_eq!(c.request_timeout(), ms(1000));
    assert_eq!(c.connect_timeout(), ms(2000));
    assert_eq!(
        (c.reconnect_backoff(), c.reconnect_backoff_max()),
        (ms(3), ms(4))
    );
    assert_eq!((c.retry_backoff(), c.retry_backoff_max()), (ms(5), ms(6)));
    assert_eq!(c.metadata_max_age(), ms(7));
    assert_eq!(c.max_in_flight_per_connection(), 2);
    assert_eq!(c.max_response_size(), 123_456);
    assert_eq!(
        client(&[("max.in.flight", "3")]).max_in_flight_per_connection(),
        3
    );
}

#[test]
fn security_properties() {
    let c = client(&[
        ("security.protocol", "sasl_ssl"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "s3cret"),
        ("ssl.ca.location", "/etc/ca.pem"),
        ("ssl.certificate.location", "/etc/client.pem"),
        ("ssl.key.location", "/etc/client.key"),
        ("ssl.endpoint.identification.algorithm", "none"),
    ]);
    let security = c.security();
    assert_eq!(security.protocol(), SecurityProtocol::SaslSsl);
    let sasl = security.sasl().expect("sasl");
    assert_eq!(
        (sasl.mechanism, sasl.username.as_str()),
        (SaslMechanism::ScramSha512, "alice")
    );
    assert_eq!(sasl.password.expose(), "s3cret");
    let tls = security.tls().expect("tls");
    assert_eq!(tls.ca_file.as_deref(), Some("/etc/ca.pem".as_ref()));
    assert_eq!(
        tls.client_cert,
        Some(ClientCert::new("/etc/client.pem", "/etc/client.key"))
    );
    assert!(!tls.verify_hostname);
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "Debug must hide the password"
    );

    let ssl = client(&[("security.protocol", "SSL")]);
    assert_eq!(ssl.security(), &SecurityConfig::Ssl(TlsConfig::default()));
    assert!(ssl.security().tls().expect("tls").verify_hostname);
    for (mechanism, expected) in [
        ("PLAIN", SaslMechanism::Plain),
        ("SCRAM-SHA-256", SaslMechanism::ScramSha256),
    ] {
        let c = client(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", "u"),
            ("sasl.password", "p"),
        ]);
        assert_eq!(c.security().sasl().map(|s| s.mechanism), Some(expected));
        assert!(c.security().tls().is_none());
    }
    // Tolerated without TLS: Java configs carry its default everywhere.
    client(&[("ssl.endpoint.identification.algorithm", "https")]);
}

/// Extra properties, the property the error must name, and a phrase its reason must contain.
type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn security_settings_must_fit_the_protocol() {
    let cases: &[Case<'_>] = &[
        (
            &[("sasl.username", "u")],
            "sasl.username",
            "security.protocol",
        ),
        (
            &[("ssl.ca.location", "ca.pem")],
            "ssl.ca.location",
            "security.protocol",
        ),
        (
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.username", "u"),
                ("sasl.password", "p"),
            ],
            "sasl.mechanism",
            "GSSAPI",
        ),
        (
            &[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "u"),
            ],
            "sasl.password",
            "SASL_SSL",
        ),
        (
            &[
                ("security.protocol", "SSL"),
                ("ssl.certificate.location", "c.pem"),
            ],
            "ssl.certificate.location",
            "ssl.key.location",
        ),
        (
            &[("security.protocol", "TLS")],
            "security.protocol",
            "\"TLS\"",
        ),
        (
            &[("sasl.mechanism", "GSSAPI")],
            "sasl.mechanism",
            "not supported",
        ),
        (
            &[("sasl.jaas.config", "x")],
            "sasl.jaas.config",
            "sasl.username",
        ),
        (
            &[("ssl.ca.location", "probe")],
            "ssl.ca.location",
            "Mozilla",
        ),
    ];
    for (extra, property, mention) in cases {
        let (p, reason) = config_error(ClientConfig::from_properties(props(extra)));
        assert_eq!(&p, property, "{extra:?}: {reason}");
        assert!(reason.contains(mention), "{extra:?}: {reason}");
    }
}

#[test]
fn every_producer_property_and_alias_parses() {
    let p = producer(&[
        ("linger.ms", "20"),
        ("batch.size", "1000000"),
        ("acks", "1"),
        ("compression.type", "zstd"),
        ("enable.idempotence", "false"),
        ("retries", "3"),
        ("delivery.timeout.ms", "60000"),
        ("buffer.memory", "1000"),
        ("max.request.size", "2000"),
        ("partitioner", "murmur2_random"),
        ("sticky.partitioning.linger.ms", "0"),
        ("transaction.timeout.ms", "9000"),
    ]);
    assert_eq!(p.linger(), ms(20));
    assert_eq!(p.batch_size(), 1_000_000);
    assert_eq!(p.acks(), Acks::Leader);
    assert_eq!(p.compression(), Compression::Zstd);
    assert!(!p.idempotence());
    assert_eq!(p.retries(), 3);
    assert_eq!(p.delivery_timeout(), ms(60_000));
    assert_eq!(p.buffer_memory(), 1000);
    assert_eq!(p.max_request_size(), 2000);
    assert_eq!(p.partitioner(), Partitioner::Murmur2Random);
    assert_eq!(p.sticky_partitioning_linger(), Duration::ZERO);
    assert_eq!(p.transaction_timeout(), ms(9000));

    let aliased = producer(&[
        ("queue.buffering.max.ms", "20"),
        ("request.required.acks", "0"),
        ("compression.codec", "lz4"),
        ("message.send.max.retries", "7"),
        ("message.timeout.ms", "50000"),
        ("message.max.bytes", "3000"),
        ("partitioner.class", "random"),
        ("max.in.flight", "5"),
    ]);
    assert_eq!(aliased.linger(), ms(20));
    assert_eq!(aliased.acks(), Acks::None);
    assert_eq!(aliased.compression(), Compression::Lz4);
    assert_eq!(aliased.retries(), 7);
    assert_eq!(aliased.delivery_timeout(), ms(50_000));
    assert_eq!(aliased.max_request_size(), 3000);
    assert_eq!(aliased.partitioner(), Partitioner::Random);

    let tx = producer(&[("transactional.id", "tx-1")]);
    assert_eq!(tx.transactional_id(), Some("tx-1"));
    assert!(tx.idempotence());
    assert_eq!(
        producer(&[("linger.ms", "7")]).sticky_partitioning_linger(),
        ms(14)
    );
}

#[test]
fn producer_enum_values() {
    for (value, acks) in [
        ("all", Acks::All),
        ("ALL", Acks::All),
        ("-1", Acks::All),
        ("1", Acks::Leader),
        ("0", Acks::None),
    ] {
        let p = producer(&[("acks", value), ("enable.idempotence", "false")]);
        assert_eq!(p.acks(), acks, "{value}");
    }
    assert_eq!(
        (Acks::None.wire(), Acks::Leader.wire(), Acks::All.wire()),
        (0, 1, -1)
    );
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        assert_eq!(
            producer(&[("compression.type", codec)])
                .compression()
                .name(),
            codec
        );
    }
    for (value, partitioner) in [
        ("murmur2", Partitioner::Murmur2),
        (
            "org.apache.kafka.clients.producer.internals.DefaultPartitioner",
            Partitioner::Murmur2,
        ),
        ("murmur2_random", Partitioner::Murmur2Random),
        ("random", Partitioner::Random),
    ] {
        assert_eq!(
            producer(&[("partitioner", value)]).partitioner(),
            partitioner,
            "{value}"
        );
    }
    let (property, reason) = producer_error(&[("partitioner", "consistent_random")]);
    assert_eq!(property, "partitioner");
    assert!(
        reason.contains("\"consistent_random\"") && reason.contains("murmur2"),
        "{reason}"
    );
}

#[test]
fn every_consumer_property_and_alias_parses() {
    let c = consumer(&[
        ("group.id", "g1"),
        ("group.instance.id", "member-1"),
        ("isolation.level", "read_committed"),
        ("auto.offset.reset", "earliest"),
        ("fetch.min.bytes", "10"),
        ("fetch.max.bytes", "1000"),
        ("max.partition.fetch.bytes", "100"),
        ("fetch.max.wait.ms", "50"),
        ("queued.max.messages.kbytes", "1024"),
        ("check.crcs", "false"),
        ("enable.auto.commit", "false"),
        ("auto.commit.interval.ms", "100"),
        ("session.timeout.ms", "10000"),
        ("heartbeat.interval.ms", "1000"),
        ("max.poll.interval.ms", "60000"),
        ("partition.assignment.strategy", "roundrobin"),
        ("client.rack", "eu-west-1a"),
    ]);
    assert_eq!(c.group_id(), Some("g1"));
    assert_eq!(c.group_instance_id(), Some("member-1"));
    assert_eq!(c.isolation_level(), IsolationLevel::ReadCommitted);
    assert_eq!(c.auto_offset_reset(), OffsetReset::Earliest);
    assert_eq!(c.fetch_min_bytes(), 10);
    assert_eq!(c.fetch_max_bytes(), 1000);
    assert_eq!(c.max_partition_fetch_bytes(), 100);
    assert_eq!(c.fetch_max_wait(), ms(50));
    assert_eq!(c.max_buffered_bytes(), MIB);
    assert!(!c.check_crcs());
    assert!(!c.auto_commit());
    assert_eq!(c.auto_commit_interval(), ms(100));
    assert_eq!(c.session_timeout(), ms(10_000));
    assert_eq!(c.heartbeat_interval(), ms(1000));
    assert_eq!(c.max_poll_interval(), ms(60_000));
    assert_eq!(c.rebalance_timeout(), ms(60_000));
    assert_eq!(c.assignors(), [Assignor::RoundRobin]);
    assert_eq!(c.client_rack(), Some("eu-west-1a"));

    let aliased = consumer(&[
        ("fetch.wait.max.ms", "70"),
        ("fetch.message.max.bytes", "200"),
    ]);
    assert_eq!(aliased.fetch_max_wait(), ms(70));
    assert_eq!(aliased.max_partition_fetch_bytes(), 200);
    assert_eq!(consumer(&[("client.rack", "")]).client_rack(), None);
}

#[test]
fn consumer_enum_values() {
    for (value, reset) in [
        ("earliest", OffsetReset::Earliest),
        ("smallest", OffsetReset::Earliest),
        ("latest", OffsetReset::Latest),
        ("largest", OffsetReset::Latest),
        ("none", OffsetReset::Error),
        ("error", OffsetReset::Error),
    ] {
        assert_eq!(
            consumer(&[("auto.offset.reset", value)]).auto_offset_reset(),
            reset,
            "{value}"
        );
    }
    let level = consumer(&[("isolation.level", "READ_UNCOMMITTED")]).isolation_level();
    assert_eq!(level, IsolationLevel::ReadUncommitted);
    assert_eq!(
        (
            IsolationLevel::ReadUncommitted.wire(),
            IsolationLevel::ReadCommitted.wire()
        ),
        (0, 1)
    );
    let (property, reason) = consumer_error(&[("auto.offset.reset", "by_duration:PT1H")]);
    assert_eq!(property, "auto.offset.reset");
    assert!(reason.contains("earliest, latest or none"), "{reason}");
}

#[test]
fn assignment_strategy_is_a_comma_list_of_short_or_class_names() {
    let c = consumer(&[(
        "partition.assignment.strategy",
        " org.apache.kafka.clients.consumer.CooperativeStickyAssignor , range,\
         org.apache.kafka.clients.consumer.RoundRobinAssignor ",
    )]);
    assert_eq!(
        c.assignors(),
        [
            Assignor::CooperativeSticky,
            Assignor::Range,
            Assignor::RoundRobin
        ]
    );
    let names: Vec<_> = c.assignors().iter().map(|a| a.name()).collect();
    assert_eq!(names, ["cooperative-sticky", "range", "roundrobin"]);
    assert!(Assignor::CooperativeSticky.is_cooperative() && !Assignor::Range.is_cooperative());

    for (value, mention) in [
        ("range,range", "listed twice"),
        ("", "comma-separated"),
        (" , ", "comma-separated"),
        ("sticky", "\"sticky\""),
        (
            "org.apache.kafka.clients.consumer.StickyAssignor",
            "StickyAssignor",
        ),
    ] {
        let (property, reason) = consumer_error(&[("partition.assignment.strategy", value)]);
        assert_eq!(property, "partition.assignment.strategy");
        assert!(reason.contains(mention), "{value:?}: {reason}");
    }
    let (_, reason) = config_error(
        ConsumerConfig::builder()
            .bootstrap("h:1")
            .assignors([])
            .build(),
    );
    assert!(reason.contains("at least one"), "{reason}");
}

#[test]
fn durations_are_whole_milliseconds() {
    assert_eq!(producer(&[("linger.ms", "0")]).linger(), Duration::ZERO);
    assert_eq!(
        producer(&[("linger.ms", " 15 ")]).linger(),
        ms(15),
        "values are trimmed"
    );
    let longest = client(&[("metadata.max.age.ms", "2147483647")]);
    assert_eq!(longest.metadata_max_age(), ms(2_147_483_647));
    for bad in ["-1", "1.5", "5ms", "", "2147483648", "PT5S"] {
        let (property, reason) = producer_error(&[("linger.ms", bad)]);
        assert_eq!(property, "linger.ms");
        assert!(
            reason.contains(&format!("{bad:?}")) && reason.contains("milliseconds"),
            "{reason}"
        );
    }
    // Typed durations have the same bound.
    let (property, _) = config_error(
        ProducerConfig::builder()
            .bootstrap("h:1")
            .linger(Duration::from_secs(30 * 24 * 3600))
            .build(),
    );
    assert_eq!(property, "linger.ms");
    let (property, _) = config_error(
        ClientConfig::builder()
            .bootstrap("h:1")
            .request_timeout(Duration::ZERO)
            .build(),
    );
    assert_eq!(property, "request.timeout.ms");
}

#[test]
fn booleans_are_true_or_false_only() {
    assert!(consumer(&[("check.crcs", "TRUE")]).check_crcs());
    assert!(!consumer(&[("check.crcs", "False")]).check_crcs());
    for bad in ["1", "0", "yes", "on", ""] {
        let (property, reason) = consumer_error(&[("check.crcs", bad)]);
        assert_eq!(property, "check.crcs");
        assert!(
            reason.contains("true or false") && reason.contains(&format!("{bad:?}")),
            "{reason}"
        );
    }
}

#[test]
fn bad_values_name_property_value_and_expectation() {
    let producer_cases: &[(&str, &str, &str)] = &[
        ("batch.size", "-5", "integer"),
        ("batch.size", "lots", "integer"),
        ("acks", "2", "all, -1, 0 or 1"),
        ("compression.type", "brotli", "zstd"),
        ("enable.idempotence", "maybe", "true or false"),
        ("retries", "2147483648", "2147483647"),
        ("buffer.memory", "0", "integer"),
        ("max.request.size", "0", "integer"),
        ("transactional.id", "", "empty"),
        ("request.timeout.ms", "soon", "milliseconds"),
        ("max.in.flight.requests.per.connection", "0", "integer"),
        ("receive.message.max.bytes", "10", "1000"),
    ];
    for (name, value, expected) in producer_cases {
        let (property, reason) = producer_error(&[(name, value)]);
        assert_eq!(&property, name, "{reason}");
        assert!(reason.contains(expected), "{name}={value}: {reason}");
        if !value.is_empty() {
            assert!(
                reason.contains(&format!("{value:?}")),
                "{name}={value}: {reason}"
            );
        }
    }
    let consumer_cases: &[(&str, &str, &str)] = &[
        ("isolation.level", "serializable", "read_committed"),
        ("fetch.max.bytes", "-1", "integer"),
        ("queued.max.messages.kbytes", "0", "integer"),
        ("group.id", "", "empty"),
        ("group.instance.id", "has space", "a-z"),
    ];
    for (name, value, expected) in consumer_cases {
        let (property, reason) = consumer_error(&[("group.id", "g"), (name, value)]);
        assert_eq!(&property, name, "{reason}");
        assert!(reason.contains(expected), "{name}={value}: {reason}");
    }
}

#[test]
fn unknown_and_misplaced_names_are_errors_naming_them() {
    let (property, reason) = producer_error(&[("linger.msx", "5")]);
    assert_eq!(
        (property.as_str(), reason.as_str()),
        ("linger.msx", "unknown property")
    );
    let (property, _) = producer_error(&[(" linger.ms", "5")]);
    assert_eq!(
        property, " linger.ms",
        "names are not trimmed or case-folded"
    );
    assert_eq!(producer_error(&[("LINGER.MS", "5")]).0, "LINGER.MS");

    let (property, reason) = consumer_error(&[("linger.ms", "5")]);
    assert_eq!(property, "linger.ms");
    assert!(
        reason.contains("producer property") && reason.contains("ConsumerConfig"),
        "{reason}"
    );
    let (property, reason) = consumer_error(&[("queue.buffering.max.ms", "5")]);
    assert_eq!(property, "queue.buffering.max.ms");
    assert!(reason.contains("producer property"), "{reason}");
    let (_, reason) = consumer_error(&[("key.serializer", "x")]);
    assert!(reason.contains("producer property"), "{reason}");
    let (_, reason) = producer_error(&[("group.id", "g")]);
    assert!(reason.contains("consumer property"), "{reason}");
    let (_, reason) = config_error(AdminConfig::from_properties(props(&[("acks", "all")])));
    assert!(
        reason.contains("producer property") && reason.contains("AdminConfig"),
        "{reason}"
    );
    let (_, reason) = config_error(ClientConfig::from_properties(props(&[("group.id", "g")])));
    assert!(reason.contains("consumer property"), "{reason}");
    let (_, reason) = consumer_error(&[("max.poll.records", "10")]);
    assert!(reason.contains("batches"), "{reason}");
    let (_, reason) = producer_error(&[("interceptor.classes", "com.example.Audit")]);
    assert_eq!(reason, "unknown property");
}

#[test]
fn ignore_list_is_accepted() {
    let common = [
        ("socket.keepalive.enable", "true"),
        ("api.version.request", "true"),
        ("statistics.interval.ms", "60000"),
        ("enable.metrics.push", "false"),
    ];
    let serializers = [
        (
            "key.serializer",
            "org.apache.kafka.common.serialization.ByteArraySerializer",
        ),
        (
            "value.serializer",
            "org.apache.kafka.common.serialization.StringSerializer",
        ),
    ];
    let deserializers = [
        (
            "key.deserializer",
            "org.apache.kafka.common.serialization.ByteArrayDeserializer",
        ),
        (
            "value.deserializer",
            "org.apache.kafka.common.serialization.StringDeserializer",
        ),
    ];
    let p = producer(&[&common[..], &serializers[..]].concat());
    assert_eq!(p, producer(&[]));
    let c = consumer(&[&common[..], &deserializers[..]].concat());
    assert_eq!(c, consumer(&[]));
    assert_eq!(client(&common), client(&[]));
}

#[test]
fn explicit_idempotence_conflicts_are_errors_naming_both() {
    for (extra, property, value) in [
        (("acks", "1"), "acks", "acks=1"),
        (
            ("request.required.acks", "0"),
            "request.required.acks",
            "request.required.acks=0",
        ),
        (("retries", "0"), "retries", "retries=0"),
        (
            ("max.in.flight.requests.per.connection", "6"),
            "max.in.flight.requests.per.connection",
            "=6",
        ),
        (("max.in.flight", "6"), "max.in.flight", "max.in.flight=6"),
    ] {
        let (p, reason) = producer_error(&[("enable.idempotence", "true"), extra]);
        assert_eq!(p, property, "{reason}");
        assert!(
            reason.contains(value) && reason.contains("enable.idempotence"),
            "{reason}"
        );
    }
    let typed = ProducerConfig::builder()
        .bootstrap("h:1")
        .enable_idempotence(true)
        .acks(Acks::Leader)
        .build();
    assert_eq!(config_error(typed).0, "acks");
}

#[test]
fn defaulted_idempotence_gives_way_like_javas() {
    // acks=1 or retries=0 without enable.idempotence: idempotence quietly off (KIP-679).
    assert!(!producer(&[("acks", "1")]).idempotence());
    assert!(!producer(&[("retries", "0")]).idempotence());
    assert!(!producer(&[("acks", "0"), ("max.in.flight", "10")]).idempotence());
    // More than 5 in flight with idempotence on by default is an error, as in Java 4.0.
    let (property, reason) = producer_error(&[("max.in.flight.requests.per.connection", "6")]);
    assert_eq!(property, "max.in.flight.requests.per.connection");
    assert!(
        reason.contains("on by default") && reason.contains("enable.idempotence=false"),
        "{reason}"
    );
    let p = producer(&[
        ("max.in.flight.requests.per.connection", "6"),
        ("enable.idempotence", "false"),
    ]);
    assert_eq!(
        (p.idempotence(), p.client().max_in_flight_per_connection()),
        (false, 6)
    );
}

#[test]
fn transactions_need_idempotence() {
    let (property, reason) =
        producer_error(&[("transactional.id", "t"), ("enable.idempotence", "false")]);
    assert_eq!(property, "transactional.id");
    assert!(reason.contains("enable.idempotence=false"), "{reason}");
    let (property, reason) = producer_error(&[("transactional.id", "t"), ("acks", "1")]);
    assert_eq!(property, "transactional.id");
    assert!(reason.contains("acks=1 turns it off"), "{reason}");
}

#[test]
fn delivery_timeout_covers_linger_and_request_timeout() {
    let (property, reason) = producer_error(&[
        ("delivery.timeout.ms", "1000"),
        ("linger.ms", "500"),
        ("request.timeout.ms", "600"),
    ]);
    assert_eq!(property, "delivery.timeout.ms");
    assert!(
        reason.contains("linger.ms") && reason.contains("request.timeout.ms"),
        "{reason}"
    );
    // Defaulted, it is raised instead, as Java does.
    let p = producer(&[("linger.ms", "100000"), ("request.timeout.ms", "30000")]);
    assert_eq!(p.delivery_timeout(), ms(130_000));
    let p = producer(&[
        ("delivery.timeout.ms", "1100"),
        ("linger.ms", "500"),
        ("request.timeout.ms", "600"),
    ]);
    assert_eq!(p.delivery_timeout(), ms(1100));
}

#[test]
fn backoff_maxima_follow_their_base() {
    let c = client(&[
        ("reconnect.backoff.ms", "5000"),
        ("retry.backoff.ms", "2000"),
    ]);
    assert_eq!(
        (c.reconnect_backoff_max(), c.retry_backoff_max()),
        (ms(5000), ms(2000))
    );
    let (property, reason) = config_error(ClientConfig::from_properties(props(&[
        ("reconnect.backoff.ms", "5000"),
        ("reconnect.backoff.max.ms", "1000"),
    ])));
    assert_eq!(property, "reconnect.backoff.max.ms");
    assert!(reason.contains("reconnect.backoff.ms"), "{reason}");
}

#[test]
fn consumer_cross_field_rules() {
    let (property, reason) = consumer_error(&[("enable.auto.commit", "true")]);
    assert_eq!(property, "enable.auto.commit");
    assert!(reason.contains("group.id"), "{reason}");
    assert!(!consumer(&[("enable.auto.commit", "false")]).auto_commit());

    let (property, reason) = consumer_error(&[("group.instance.id", "m1")]);
    assert_eq!(property, "group.instance.id");
    assert!(reason.contains("group.id"), "{reason}");

    let (property, reason) = consumer_error(&[("heartbeat.interval.ms", "45000")]);
    assert_eq!(property, "heartbeat.interval.ms");
    assert!(reason.contains("session.timeout.ms"), "{reason}");

    let (property, reason) = consumer_error(&[("receive.message.max.bytes", "1000000")]);
    assert_eq!(property, "fetch.max.bytes");
    assert!(reason.contains("receive.message.max.bytes"), "{reason}");
    consumer(&[
        ("receive.message.max.bytes", "1000000"),
        ("fetch.max.bytes", "999000"),
    ]);

    let c = ConsumerConfig::builder()
        .bootstrap("h:1")
        .group_id("g")
        .rebalance_timeout(ms(90_000))
        .build()
        .expect("build");
    assert_eq!(c.rebalance_timeout(), ms(90_000));
}

#[test]
fn repeated_names_override_but_aliases_clash() {
    let p = ProducerConfig::from_properties(props(&[("linger.ms", "1"), ("linger.ms", "2")]))
        .expect("override");
    assert_eq!(p.linger(), ms(2));
    let (property, reason) = producer_error(&[("linger.ms", "1"), ("queue.buffering.max.ms", "2")]);
    assert_eq!(property, "queue.buffering.max.ms");
    assert!(
        reason.contains("linger.ms and queue.buffering.max.ms"),
        "{reason}"
    );
}

#[test]
fn maps_and_typed_overrides() {
    let mut map = HashMap::new();
    map.insert("bootstrap.servers".to_owned(), "k:9092".to_owned());
    map.insert("linger.ms".to_owned(), "50".to_owned());
    let p = ProducerConfig::from_properties(&map).expect("from a map");
    assert_eq!(p.linger(), ms(50));

    let p = ProducerConfig::builder()
        .properties(&map)
        .expect("properties")
        .linger(ms(1))
        .compression(Compression::Gzip)
        .build()
        .expect("build");
    assert_eq!((p.linger(), p.compression()), (ms(1), Compression::Gzip));
}

#[test]
fn typed_builders() {
    let shared = ClientConfig::builder()
        .bootstrap_servers(["k1:9092", "k2:9092"])
        .client_id("svc")
        .security(SecurityConfig::SaslSsl {
            tls: TlsConfig::default(),
            sasl: SaslConfig::new(SaslMechanism::ScramSha256, "svc", Password::new("pw")),
        })
        .build()
        .expect("client");
    let p = ProducerConfig::builder()
        .client(shared.clone())
        .acks(Acks::All)
        .linger(ms(5))
        .partitioner(Partitioner::Murmur2Random)
        .transactional_id("tx")
        .build()
        .expect("producer");
    assert_eq!(p.client(), &shared);
    let c = ConsumerConfig::builder()
        .client(shared.clone())
        .group_id("g")
        .isolation_level(IsolationLevel::ReadCommitted)
        .assignors([Assignor::CooperativeSticky])
        .build()
        .expect("consumer");
    assert_eq!(c.client(), &shared);
    assert!(c.auto_commit());

    let p = ProducerConfig::builder()
        .bootstrap("h:1")
        .max_in_flight_per_connection(1)
        .request_timeout(ms(5000))
        .security(SecurityConfig::Ssl(TlsConfig::default()))
        .build()
        .expect("forwarded setters");
    assert_eq!(p.client().max_in_flight_per_connection(), 1);
    assert_eq!(p.client().request_timeout(), ms(5000));
    assert_eq!(p.client().security().protocol(), SecurityProtocol::Ssl);
}

#[test]
fn group_protocol_defaults_to_classic_and_takes_consumer() {
    use sluice_client::config::GroupProtocol;
    let group = [("group.id", "g")];
    assert_eq!(consumer(&group).group_protocol(), GroupProtocol::Classic);
    assert_eq!(consumer(&group).remote_assignor(), None);
    let kip848 = consumer(&[
        ("group.id", "g"),
        ("group.protocol", "CONSUMER"),
        ("group.remote.assignor", "uniform"),
    ]);
    assert_eq!(kip848.group_protocol(), GroupProtocol::Consumer);
    assert_eq!(kip848.remote_assignor(), Some("uniform"));
    let (property, reason) = consumer_error(&[("group.protocol", "share")]);
    assert_eq!(property, "group.protocol");
    assert!(reason.contains("classic or consumer"), "{reason}");
}
