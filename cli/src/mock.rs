//! `sluice mock`: an in-process mock Kafka cluster in the foreground, so anyone can try a
//! Kafka client (sluice, kcat, librdkafka, Java) with nothing installed.

use std::io::Write;

use clap::Args as ClapArgs;
use sluice_mock::{MockCluster, MockConfig};

use crate::CliError;

/// `sluice mock [--brokers N] [--port P] [-t TOPIC[:PARTITIONS]]...`
#[derive(Debug, ClapArgs)]
pub(crate) struct Args {
    /// How many brokers (ids 1..=N, each on its own port).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    brokers: u16,
    /// The first broker's port on 127.0.0.1; the others take the following ones. Default: free
    /// ports.
    #[arg(long)]
    port: Option<u16>,
    /// Create a topic at start, `NAME` or `NAME:PARTITIONS` (repeatable). Topics are also
    /// created on first use, with `--partitions` partitions.
    #[arg(short = 't', long = "topic")]
    topics: Vec<String>,
    /// Partitions of auto-created topics.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    partitions: i32,
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    let topics = args
        .topics
        .iter()
        .map(|t| parse_topic(t))
        .collect::<Result<Vec<_>, _>>()?;
    let config = MockConfig {
        brokers: usize::from(args.brokers),
        base_port: args.port,
        default_partitions: args.partitions,
        ..MockConfig::default()
    };
    let cluster = MockCluster::start(config).await?;
    for (name, partitions) in &topics {
        cluster.create_topic(name, *partitions);
    }
    // The bootstrap address alone on stdout's first line, for scripts: `read BOOTSTRAP`.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", cluster.bootstrap())?;
    stdout.flush()?;
    eprintln!(
        "sluice mock: {} broker(s) at {}; Ctrl-C stops it",
        args.brokers,
        cluster.bootstrap()
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// `NAME` or `NAME:PARTITIONS`.
fn parse_topic(spec: &str) -> Result<(String, i32), CliError> {
    let (name, partitions) = match spec.rsplit_once(':') {
        Some((name, n)) => {
            let n: i32 = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                CliError::Failed(format!("-t {spec}: partitions must be a positive number"))
            })?;
            (name, n)
        }
        None => (spec, 1),
    };
    if name.is_empty() {
        return Err(CliError::Failed(format!("-t {spec}: empty topic name")));
    }
    Ok((name.to_owned(), partitions))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_topic;

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic("orders").unwrap(), ("orders".to_owned(), 1));
        assert_eq!(parse_topic("orders:6").unwrap(), ("orders".to_owned(), 6));
        assert!(parse_topic("orders:0").is_err());
        assert!(parse_topic("orders:x").is_err());
        assert!(parse_topic(":3").is_err());
    }
}
