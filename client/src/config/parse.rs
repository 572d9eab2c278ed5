//! Value parsing and range checks shared by every config kind, and the errors they give.
//!
//! Parsing follows Java's `ConfigDef` where the two clients differ: values are trimmed,
//! booleans are `true` or `false` (any case) and nothing else, `*.ms` values are whole
//! milliseconds, and lists are comma-separated with blanks around the commas allowed.
//! Every error names the property as the user spelled it and, for a bad value, the value and
//! what was expected, so a config file can be fixed from the message alone.

use std::time::Duration;

use crate::{Error, Result};

/// The largest duration any setting accepts: `i32::MAX` milliseconds (about 24.8 days).
///
/// Java types most `*.ms` settings as `int`, and several go on the wire as `i32`
/// (`request.timeout.ms` in Produce, `fetch.max.wait.ms`, `session.timeout.ms`). The bound also
/// keeps every `Instant + duration` deadline the client computes far from overflow, which
/// would panic.
pub(super) const MAX_DURATION: Duration = Duration::from_millis(i32::MAX as u64);

/// The largest byte count a setting that goes on the wire as an `i32` accepts.
pub(super) const MAX_I32_SIZE: usize = i32::MAX as usize;

/// A config error for `property`.
pub(super) fn error(property: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        property: property.to_owned(),
        reason: reason.into(),
    }
}

/// The error for a value that does not parse or is out of range.
pub(super) fn invalid(property: &str, value: &str, expected: &str) -> Error {
    error(
        property,
        format!("invalid value {value:?}: expected {expected}"),
    )
}

/// An integer in `min..=max`. Parsed as `i64` so that a negative value is reported as out of
/// range rather than as "not a number".
pub(super) fn int(property: &str, value: &str, min: i64, max: i64) -> Result<i64> {
    let expected = || format!("an integer from {min} to {max}");
    match value.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(invalid(property, value, &expected())),
    }
}

/// A byte count or other size in `min..=max`.
pub(super) fn size(property: &str, value: &str, min: usize, max: usize) -> Result<usize> {
    let (lo, hi) = (to_i64(min), to_i64(max));
    let n = int(property, value, lo, hi)?;
    usize::try_from(n)
        .map_err(|_| invalid(property, value, &format!("an integer from {lo} to {hi}")))
}

/// A count from 0 to `i32::MAX`, the range of Java's `int` settings.
pub(super) fn count(property: &str, value: &str) -> Result<u32> {
    let n = int(property, value, 0, i64::from(i32::MAX))?;
    u32::try_from(n).map_err(|_| invalid(property, value, "an integer from 0 to 2147483647"))
}

/// A whole number of milliseconds from 0 to [`MAX_DURATION`].
pub(super) fn millis(property: &str, value: &str) -> Result<Duration> {
    match value.parse::<u64>() {
        Ok(ms) if Duration::from_millis(ms) <= MAX_DURATION => Ok(Duration::from_millis(ms)),
        _ => Err(invalid(
            property,
            value,
            "a whole number of milliseconds from 0 to 2147483647",
        )),
    }
}

/// `true` or `false`, in any case, as Java accepts; librdkafka's `1`/`0`/`yes` are refused so
/// that a typo cannot flip a safety setting.
pub(super) fn boolean(property: &str, value: &str) -> Result<bool> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(invalid(property, value, "true or false"))
    }
}

/// The items of a comma-separated list, trimmed; empty items (`a,,b`, a trailing comma) are
/// dropped.
pub(super) fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The value of `table` whose name matches `value`, ignoring ASCII case.
pub(super) fn one_of<T: Copy>(
    property: &str,
    value: &str,
    table: &[(&str, T)],
    expected: &str,
) -> Result<T> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, v)| v)
        .ok_or_else(|| invalid(property, value, expected))
}

/// A non-empty identifier (`group.id`, `transactional.id`...).
pub(super) fn non_empty(property: &str, value: &str) -> Result<String> {
    if value.is_empty() {
        Err(error(
            property,
            "must not be empty; leave the property out instead",
        ))
    } else {
        Ok(value.to_owned())
    }
}

/// Checks that a duration is at least `min` and at most [`MAX_DURATION`].
pub(super) fn check_duration(property: &str, d: Duration, min: Duration) -> Result<()> {
    if d < min || d > MAX_DURATION {
        Err(error(
            property,
            format!("{d:?} is out of range: expected {min:?} to {MAX_DURATION:?} (i32::MAX ms)"),
        ))
    } else {
        Ok(())
    }
}

/// Checks that a size is in `min..=max`.
pub(super) fn check_size(property: &str, n: usize, min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&n) {
        Ok(())
    } else {
        Err(error(
            property,
            format!("{n} is out of range: expected {min} to {max}"),
        ))
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Checks one `host:port` broker address and returns it trimmed.
///
/// IPv6 literals need brackets (`[::1]:9092`), as in a URL: without them the port cannot be
/// told from the address. The port is required; librdkafka defaults it to 9092 but Java does
/// not, and a missing port is more often a mistake than a wish for the default.
pub(super) fn broker_address(property: &str, addr: &str) -> Result<String> {
    let addr = addr.trim();
    let bad = |why: &str| invalid(property, addr, &format!("host:port ({why})"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let host_ok = match host.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => !host.is_empty() && !host.contains(':'),
    };
    if !host_ok {
        return Err(bad("IPv6 addresses go in brackets, as in [::1]:9092"));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad("the host has a space or a slash"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(addr.to_owned()),
        _ => Err(bad("the port must be 1 to 65535")),
    }
}

/// Which property name the user gave for each setting, for error messages and alias clashes.
///
/// Errors found when `build()` checks settings against each other name the properties the way
/// the user wrote them (`request.required.acks` if that is what the file said); settings made
/// through typed setters are named by their Java property name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GivenNames(Vec<(&'static str, String)>);

impl GivenNames {
    /// Records that `canonical` was set through the name `given`.
    ///
    /// The same name twice is fine (the last value wins, so a later file can override an
    /// earlier one). Two different names for one setting, such as `linger.ms` and
    /// `queue.buffering.max.ms`, are an error: from a `HashMap` the winner would depend on
    /// iteration order.
    pub(super) fn record(&mut self, canonical: &'static str, given: &str) -> Result<()> {
        match self.0.iter().find(|(c, _)| *c == canonical) {
            Some((_, previous)) if previous != given => Err(error(
                given,
                format!("{previous} and {given} are two names for the same setting; give one"),
            )),
            Some(_) => Ok(()),
            None => {
                self.0.push((canonical, given.to_owned()));
                Ok(())
            }
        }
    }

    /// The name the user gave for `canonical`, or `canonical` itself.
    pub(super) fn name<'a>(&'a self, canonical: &'a str) -> &'a str {
        self.0
            .iter()
            .find(|(c, _)| *c == canonical)
            .map_or(canonical, |(_, given)| given)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(e: Error) -> String {
        match e {
            Error::Config { reason, .. } => reason,
            other => panic!("not a config error: {other}"),
        }
    }

    #[test]
    fn millis_are_whole_and_bounded() {
        assert_eq!(millis("x.ms", "0").ok(), Some(Duration::ZERO));
        assert_eq!(millis("x.ms", "2147483647").ok(), Some(MAX_DURATION));
        for bad in ["-1", "2147483648", "1.5", "5ms", "", "PT5S"] {
            let r = reason(millis("x.ms", bad).expect_err(bad));
            assert!(r.contains(&format!("{bad:?}")), "{r}");
        }
    }

    #[test]
    fn ints_report_negative_values_as_out_of_range() {
        assert_eq!(int("n", "+7", 0, 10).ok(), Some(7));
        let r = reason(int("n", "-1", 0, 10).expect_err("negative"));
        assert_eq!(r, r#"invalid value "-1": expected an integer from 0 to 10"#);
        assert!(size("n", "1e3", 0, 10).is_err());
    }

    #[test]
    fn booleans_are_true_or_false_only() {
        assert_eq!(boolean("b", "TRUE").ok(), Some(true));
        assert_eq!(boolean("b", "False").ok(), Some(false));
        for bad in ["1", "0", "yes", "t", ""] {
            assert!(boolean("b", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_trim_and_skip_empty_items() {
        let items: Vec<_> = list(" a , b,,c ,").collect();
        assert_eq!(items, ["a", "b", "c"]);
        assert_eq!(list("").count(), 0);
    }

    #[test]
    fn broker_addresses() {
        for ok in [
            "localhost:9092",
            "10.0.0.1:1",
            "[::1]:9092",
            "kafka-0.kafka.svc:65535",
        ] {
            assert_eq!(broker_address("b", ok).ok().as_deref(), Some(ok));
        }
        for bad in [
            "localhost",
            ":9092",
            "h:0",
            "h:65536",
            "h:x",
            "::1:9092",
            "[::1]",
            "[zz]:1",
        ] {
            assert!(broker_address("b", bad).is_err(), "{bad}");
        }
        assert!(broker_address("b", "PLAINTEXT://h:9092").is_err());
    }

    #[test]
    fn aliases_clash_but_repeats_override() {
        let mut names = GivenNames::default();
        names.record("linger.ms", "linger.ms").expect("first");
        names.record("linger.ms", "linger.ms").expect("repeat");
        let r = reason(
            names
                .record("linger.ms", "queue.buffering.max.ms")
                .expect_err("clash"),
        );
        assert!(r.contains("linger.ms and queue.buffering.max.ms"), "{r}");
        assert_eq!(names.name("linger.ms"), "linger.ms");
        assert_eq!(names.name("acks"), "acks");
    }
}
