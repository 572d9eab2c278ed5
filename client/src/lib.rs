//! sluice's async Kafka client, written by hand on tokio: connections, cluster metadata,
//! producer, consumer and admin.
//!
//! Layering follows the protocol crate: codecs there, I/O here. Each broker connection is one
//! driver task that pipelines requests by correlation id; everything above talks to brokers
//! through [`cluster::Cluster`], which owns the metadata cache and one connection per broker.

pub mod admin;
pub mod cluster;
pub mod config;
mod conn;
pub mod consumer;
pub mod error;
pub mod group;
pub mod producer;
pub mod security;
pub mod txn;

pub use error::{Error, KafkaCode, Result};
