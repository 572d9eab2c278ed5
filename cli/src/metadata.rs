//! `sluice metadata`: brokers, topics and partitions, like `kcat -L`.

use std::io::{self, Write};

use sluice_client::cluster::{Cluster, ClusterOptions};

use crate::connect::BrokerArgs;

/// Arguments of `sluice metadata`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// Only this topic.
    #[arg(short = 't', long = "topic")]
    topic: Option<String>,
}

pub(crate) async fn run(args: &Args) -> Result<(), crate::CliError> {
    let config = args.broker.client_config()?;
    let cluster = Cluster::connect(ClusterOptions::from_client(&config)).await?;
    let snapshot = match &args.topic {
        Some(topic) => {
            cluster.topic(topic).await?;
            cluster.snapshot()
        }
        None => cluster.refresh_all().await?,
    };
    let mut out = io::stdout().lock();
    let scope = args
        .topic
        .as_deref()
        .map_or("all topics".to_owned(), |t| format!("topic {t:?}"));
    writeln!(
        out,
        "Metadata for {scope} (cluster {}):",
        snapshot.cluster_id.as_deref().unwrap_or("unknown")
    )?;
    let mut brokers: Vec<_> = snapshot.brokers.values().collect();
    brokers.sort_by_key(|b| b.id);
    writeln!(out, " {} brokers:", brokers.len())?;
    for b in brokers {
        let controller = if b.id == snapshot.controller {
            " (controller)"
        } else {
            ""
        };
        writeln!(out, "  broker {} at {}{controller}", b.id, b.addr)?;
    }
    let mut topics: Vec<_> = snapshot
        .topics
        .values()
        .filter(|t| args.topic.as_ref().is_none_or(|only| &t.name == only))
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    writeln!(out, " {} topics:", topics.len())?;
    for t in topics {
        writeln!(
            out,
            "  topic {:?} with {} partitions:",
            t.name,
            t.partitions.len()
        )?;
        for p in &t.partitions {
            let list = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            let error = p.error.map(|e| format!(", error {e}")).unwrap_or_default();
            writeln!(
                out,
                "    partition {}, leader {}, epoch {}, replicas: {}, isrs: {}{error}",
                p.partition,
                p.leader,
                p.leader_epoch,
                list(&p.replicas),
                list(&p.isr)
            )?;
        }
    }
    Ok(())
}
