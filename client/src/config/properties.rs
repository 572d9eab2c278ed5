//! `from_properties`: Java and librdkafka property names mapped onto the typed builders.
//!
//! A name is looked up in this order: the ignore lists, the alias table (librdkafka names for
//! the same setting), the shared client table here, the kind's own table (`PROPERTIES` in
//! `producer_builder.rs` and `consumer_builder.rs`, next to the code that sets them); anything
//! else is an error that names the property, and says which kind takes it when another one
//! does. The same tables decide the hint, so they cannot drift apart from the parsing.

use super::client_builder::ClientConfigBuilder;
use super::parse::{self, invalid, MAX_I32_SIZE};
use super::security::{Password, MECHANISMS, PROTOCOLS};
use super::{consumer_builder, producer_builder, AdminConfigBuilder};
use crate::Result;

/// Which `from_properties` is parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Client,
    Admin,
    Producer,
    Consumer,
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Client => "ClientConfig",
            Kind::Admin => "AdminConfig",
            Kind::Producer => "ProducerConfig",
            Kind::Consumer => "ConsumerConfig",
        }
    }

    fn own(self) -> &'static [&'static str] {
        match self {
            Kind::Client | Kind::Admin => &[],
            Kind::Producer => producer_builder::PROPERTIES,
            Kind::Consumer => consumer_builder::PROPERTIES,
        }
    }

    fn ignored(self) -> &'static [&'static str] {
        match self {
            Kind::Client | Kind::Admin => &[],
            Kind::Producer => &["key.serializer", "value.serializer"],
            Kind::Consumer => &["key.deserializer", "value.deserializer"],
        }
    }
}

/// Accepted by every kind and ignored on purpose; see the module docs of `config` for why.
const IGNORED: &[&str] = &[
    "socket.keepalive.enable",
    "api.version.request",
    "statistics.interval.ms",
    "enable.metrics.push",
];

/// librdkafka (and old Java) names for settings that have a canonical name below.
const ALIASES: &[(&str, &str)] = &[
    ("metadata.broker.list", "bootstrap.servers"),
    ("max.in.flight", "max.in.flight.requests.per.connection"),
    ("sasl.mechanisms", "sasl.mechanism"),
    ("queue.buffering.max.ms", "linger.ms"),
    ("request.required.acks", "acks"),
    ("compression.codec", "compression.type"),
    ("message.send.max.retries", "retries"),
    ("message.timeout.ms", "delivery.timeout.ms"),
    ("message.max.bytes", "max.request.size"),
    ("partitioner.class", "partitioner"),
    ("fetch.wait.max.ms", "fetch.max.wait.ms"),
    ("fetch.message.max.bytes", "max.partition.fetch.bytes"),
];

/// Shared by every kind ([`ClientConfigBuilder`]).
const CLIENT: &[&str] = &[
    "bootstrap.servers",
    "client.id",
    "request.timeout.ms",
    "socket.connection.setup.timeout.ms",
    "reconnect.backoff.ms",
    "reconnect.backoff.max.ms",
    "retry.backoff.ms",
    "retry.backoff.max.ms",
    "metadata.max.age.ms",
    "max.in.flight.requests.per.connection",
    "receive.message.max.bytes",
    "security.protocol",
    "sasl.mechanism",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.endpoint.identification.algorithm",
];

/// Well-known names sluice does not take, with what to do instead.
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "sasl.jaas.config",
        "sluice does not read JAAS; set sasl.username and sasl.password",
    ),
    (
        "ssl.truststore.location",
        "sluice reads PEM files, not Java key stores; use ssl.ca.location",
    ),
    (
        "ssl.keystore.location",
        "sluice reads PEM files, not Java key stores; use ssl.certificate.location and \
         ssl.key.location",
    ),
    (
        "max.poll.records",
        "the sluice consumer hands out whole record batches, not polls of N records",
    ),
];

/// What a property name is to a config kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Accepted and ignored.
    Ignored,
    /// A shared client setting, by canonical name.
    Client(&'static str),
    /// A setting of the kind itself, by canonical name.
    Own(&'static str),
}

fn classify(kind: Kind, name: &str) -> Result<Class> {
    if IGNORED.contains(&name) || kind.ignored().contains(&name) {
        return Ok(Class::Ignored);
    }
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |&(_, c)| c);
    if let Some(c) = CLIENT.iter().find(|c| **c == canonical) {
        Ok(Class::Client(c))
    } else if let Some(c) = kind.own().iter().find(|c| **c == canonical) {
        Ok(Class::Own(c))
    } else {
        Err(unknown(kind, name, canonical))
    }
}

/// Whether a property is taken by producers, by consumers, or by both: for programs that
/// build both from one list of properties (a consume-transform-produce loop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyScope {
    /// A shared client setting (or one both accept and ignore).
    Both,
    /// A producer setting.
    Producer,
    /// A consumer setting.
    Consumer,
    /// Neither takes it.
    Unknown,
}

/// Which kinds of config take the property `name` (Java or librdkafka spelling).
pub fn property_scope(name: &str) -> PropertyScope {
    match (
        classify(Kind::Producer, name),
        classify(Kind::Consumer, name),
    ) {
        (Ok(_), Ok(_)) => PropertyScope::Both,
        (Ok(_), Err(_)) => PropertyScope::Producer,
        (Err(_), Ok(_)) => PropertyScope::Consumer,
        (Err(_), Err(_)) => PropertyScope::Unknown,
    }
}

/// The error for a name `kind` does not take, with a hint when there is one.
pub(super) fn unknown(kind: Kind, name: &str, canonical: &str) -> crate::Error {
    let this = kind.type_name();
    let other = [Kind::Producer, Kind::Consumer]
        .into_iter()
        .find(|k| *k != kind && (k.own().contains(&canonical) || k.ignored().contains(&canonical)));
    let reason = if let Some(other) = other {
        let which = if other == Kind::Producer {
            "producer"
        } else {
            "consumer"
        };
        format!(
            "unknown property: {name} is a {which} property, which {this} does not take \
             (Java only warns about misplaced properties; sluice refuses them)"
        )
    } else if let Some((_, hint)) = UNSUPPORTED.iter().find(|(n, _)| *n == name) {
        format!("unknown property: {hint}")
    } else {
        "unknown property".to_owned()
    };
    parse::error(name, reason)
}

/// A builder `from_properties` can fill.
pub(super) trait Target {
    const KIND: Kind;

    /// The shared client settings.
    fn client(&mut self) -> &mut ClientConfigBuilder;

    /// Sets one of the kind's own settings; `canonical` is from the kind's table.
    fn apply_own(&mut self, canonical: &'static str, name: &str, value: &str) -> Result<()> {
        let _ = value;
        Err(unknown(Self::KIND, name, canonical))
    }
}

/// Applies `properties` to `target`. Values are trimmed, as Java does.
pub(super) fn apply<T: Target, K: AsRef<str>, V: AsRef<str>>(
    target: &mut T,
    properties: impl IntoIterator<Item = (K, V)>,
) -> Result<()> {
    for (name, value) in properties {
        let (name, value) = (name.as_ref(), value.as_ref().trim());
        match classify(T::KIND, name)? {
            Class::Ignored => {}
            Class::Client(canonical) => apply_client(target.client(), canonical, name, value)?,
            Class::Own(canonical) => target.apply_own(canonical, name, value)?,
        }
    }
    Ok(())
}

impl Target for ClientConfigBuilder {
    const KIND: Kind = Kind::Client;

    fn client(&mut self) -> &mut ClientConfigBuilder {
        self
    }
}

impl Target for AdminConfigBuilder {
    const KIND: Kind = Kind::Admin;

    fn client(&mut self) -> &mut ClientConfigBuilder {
        &mut self.client
    }
}

fn apply_client(
    b: &mut ClientConfigBuilder,
    canonical: &'static str,
    name: &str,
    value: &str,
) -> Result<()> {
    b.names.record(canonical, name)?;
    let ms = || parse::millis(name, value);
    let s = &mut b.security;
    match canonical {
        "bootstrap.servers" => {
            b.bootstrap_servers = parse::list(value).map(str::to_owned).collect()
        }
        "client.id" => b.client_id = value.to_owned(),
        "request.timeout.ms" => b.request_timeout = ms()?,
        "socket.connection.setup.timeout.ms" => b.connect_timeout = ms()?,
        "reconnect.backoff.ms" => b.reconnect_backoff = ms()?,
        "reconnect.backoff.max.ms" => b.reconnect_backoff_max = Some(ms()?),
        "retry.backoff.ms" => b.retry_backoff = ms()?,
        "retry.backoff.max.ms" => b.retry_backoff_max = Some(ms()?),
        "metadata.max.age.ms" => b.metadata_max_age = ms()?,
        "max.in.flight.requests.per.connection" => {
            b.max_in_flight_per_connection = parse::size(name, value, 1, MAX_I32_SIZE)?;
        }
        "receive.message.max.bytes" => {
            b.max_response_size = parse::size(name, value, 1000, MAX_I32_SIZE)?
        }
        "security.protocol" => {
            let expected = "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL";
            s.protocol = Some(parse::one_of(name, value, PROTOCOLS, expected)?);
        }
        "sasl.mechanism" => {
            let expected =
                "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (GSSAPI and OAUTHBEARER are not supported)";
            s.mechanism = Some(parse::one_of(name, value, MECHANISMS, expected)?);
        }
        "sasl.username" => s.username = Some(parse::non_empty(name, value)?),
        // Never echo the value: it is a secret, and any string is a valid password.
        "sasl.password" => s.password = Some(Password::new(value)),
        "ssl.ca.location" => {
            if value.eq_ignore_ascii_case("probe") {
                let expected =
                    "a PEM file; leave ssl.ca.location out to trust the bundled Mozilla roots";
                return Err(invalid(name, value, expected));
            }
            s.ca_file = Some(parse::non_empty(name, value)?.into());
        }
        "ssl.certificate.location" => s.cert_file = Some(parse::non_empty(name, value)?.into()),
        "ssl.key.location" => s.key_file = Some(parse::non_empty(name, value)?.into()),
        "ssl.endpoint.identification.algorithm" => {
            let table = [("https", true), ("none", false), ("", false)];
            s.verify_hostname = Some(parse::one_of(name, value, &table, "https, none or empty")?);
        }
        _ => return Err(unknown(Kind::Client, name, canonical)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name in a table reaches a match arm: applying it with a nonsense value gives a
    /// value error (or is accepted), never "unknown property".
    #[test]
    fn every_table_name_is_handled() {
        let not_unknown = |kind: Kind, name: &str, r: Result<()>| {
            if let Err(crate::Error::Config { reason, .. }) = r {
                assert!(
                    !reason.starts_with("unknown property"),
                    "{kind:?} {name}: {reason}"
                );
            }
        };
        for &name in CLIENT {
            let r = apply_client(&mut ClientConfigBuilder::default(), name, name, "\u{1}");
            not_unknown(Kind::Client, name, r);
        }
        for &name in producer_builder::PROPERTIES {
            let r = crate::config::ProducerConfigBuilder::default().apply_own(name, name, "\u{1}");
            not_unknown(Kind::Producer, name, r);
        }
        for &name in consumer_builder::PROPERTIES {
            let r = crate::config::ConsumerConfigBuilder::default().apply_own(name, name, "\u{1}");
            not_unknown(Kind::Consumer, name, r);
        }
    }

    #[test]
    fn tables_do_not_overlap() {
        let all: Vec<&str> = CLIENT
            .iter()
            .chain(producer_builder::PROPERTIES)
            .chain(consumer_builder::PROPERTIES)
            .copied()
            .collect();
        for (i, name) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(name), "{name} is in two tables");
            assert!(!IGNORED.contains(name), "{name} is both known and ignored");
        }
        for (alias, canonical) in ALIASES {
            assert!(
                all.contains(canonical),
                "{alias} points at unknown {canonical}"
            );
            assert!(
                !all.contains(alias),
                "alias {alias} is also a canonical name"
            );
        }
    }
}
