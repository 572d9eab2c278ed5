//! Options every broker-facing command shares, kcat style: `-b` for the bootstrap brokers and
//! `-X name=value` for any client property by its usual Java/librdkafka name.

use sluice_client::config::ClientConfig;

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
