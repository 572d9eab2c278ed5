//! The async Kafka client of sluice (connections, producer, consumer, groups, transactions, admin). Not built yet.
