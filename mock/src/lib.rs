//! An in-process Kafka test cluster with fault injection. Not built yet.
