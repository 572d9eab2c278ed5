//! Options every broker-facing command shares, kcat style: `-b` for the bootstrap brokers and
//! `-X name=value` for any client property by its usual Java/librdkafka name.

use sluice_client::cluster::Cluster;
use sluice_client::config::ClientConfig;
use sluice_client::KafkaCode;

use crate::CliError;

/// `-b` and `-X`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct BrokerArgs {
    /// Bootstrap broker(s), `host:port[,host:port...]`.
    #[arg(short = 'b', long = "brokers", value_name = "HOST:PORT")]
    pub(crate) brokers: String,
    /// A client property by its Java/librdkafka name, e.g. `-X request.timeout.ms=5000`.
    /// Repeatable.
    #[arg(short = 'X', value_name = "NAME=VALUE", value_parser = parse_property)]
    pub(crate) properties: Vec<(String, String)>,
}

impl BrokerArgs {
    /// The properties with `bootstrap.servers` from `-b` first, so `-X` can still override it.
    pub(crate) fn all_properties(&self) -> Vec<(String, String)> {
        let mut all = vec![("bootstrap.servers".to_owned(), self.brokers.clone())];
        all.extend(self.properties.iter().cloned());
        all
    }

    /// The shared client configuration.
    pub(crate) fn client_config(&self) -> sluice_client::Result<ClientConfig> {
        ClientConfig::from_properties(self.all_properties())
    }
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// The partitions of `topic` to read or write: all of them, or just `only` after checking it
/// exists. An unknown topic, or one the broker reports an error for, is a one-line error.
pub(crate) async fn topic_partitions(
    cluster: &Cluster,
    topic: &str,
    only: Option<i32>,
) -> Result<Vec<i32>, CliError> {
    let info = cluster
        .topic(topic)
        .await
        .map_err(|e| topic_error(topic, e))?;
    if info.partitions.is_empty() {
        return Err(CliError::Failed(format!(
            "topic {topic:?} has no partitions"
        )));
    }
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    match only {
        None => Ok(all),
        Some(p) if all.contains(&p) => Ok(vec![p]),
        Some(p) => Err(CliError::Failed(format!(
            "topic {topic:?} has partitions 0..{}: partition {p} does not exist",
            all.len() - 1
        ))),
    }
}

/// Says "does not exist" for the error that means it, and names the topic for the others.
pub(crate) fn topic_error(topic: &str, e: sluice_client::Error) -> CliError {
    if e.code() == Some(KafkaCode::UNKNOWN_TOPIC_OR_PARTITION) {
        CliError::Failed(format!("topic {topic:?} does not exist"))
    } else {
        CliError::Failed(format!("topic {topic:?}: {e}"))
    }
}
