//! Name rules Kafka enforces.

/// Whether `name` is a legal topic name: 1 to 249 of `[a-zA-Z0-9._-]`, and not `.` or `..`
/// (Kafka's `Topic.validate`).
pub(crate) fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::valid_topic;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(valid_topic("orders.v1_raw-2"));
        assert!(!valid_topic(""));
        assert!(!valid_topic(".."));
        assert!(!valid_topic("has space"));
        assert!(!valid_topic(&"x".repeat(250)));
        assert!(valid_topic(&"x".repeat(249)));
    }
}
