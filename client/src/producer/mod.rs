//! Producing records (being written).

pub mod partitioner;
