//! `sluice group`: list consumer groups, describe one (members, assignments, committed offsets
//! and lag), reset a group's offsets (like `kafka-consumer-groups.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use clap::Subcommand;
use sluice_client::admin::{Admin, OffsetSpec};
use sluice_client::config::{AdminConfig, IsolationLevel};
use sluice_client::group::OffsetToCommit;

use crate::connect::{topic_partitions, BrokerArgs};
use crate::consume::Lookup;
use crate::CliError;

/// Arguments of `sluice group`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List the cluster's consumer groups.
    List {
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Members, their partitions, committed offsets and lag of a group.
    Describe {
        #[command(flatten)]
        broker: BrokerArgs,
        /// The group id.
        group: String,
    },
    /// Set a group's committed offsets for a topic (the group must have no active members).
    ResetOffsets {
        #[command(flatten)]
        broker: BrokerArgs,
        /// The group id.
        group: String,
        /// The topic whose partitions to reset.
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// earliest | latest | OFFSET (clamped into each partition's log) | s@MILLIS (the first
        /// record at or after this time; the end where there is none).
        #[arg(long = "to", value_parser = parse_target)]
        to: Target,
        /// Print what would be committed without committing it.
        #[arg(long = "dry-run")]
        dry_run: bool,
    },
}

/// Where `reset-offsets --to` moves a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

fn parse_target(s: &str) -> Result<Target, String> {
    let number = |n: &str| {
        n.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| format!("expected earliest, latest, OFFSET or s@MILLIS, got {s:?}"))
    };
    match s {
        "earliest" => Ok(Target::Earliest),
        "latest" => Ok(Target::Latest),
        _ => match s.strip_prefix("s@") {
            Some(t) => number(t).map(Target::Timestamp),
            None => number(s).map(Target::Offset),
        },
    }
}

pub(crate) async fn run(args: &Args) -> Result<(), CliError> {
    match &args.command {
        GroupCommand::List { broker } => list(broker).await,
        GroupCommand::Describe { broker, group } => describe(broker, group).await,
        GroupCommand::ResetOffsets {
            broker,
            group,
            topic,
            to,
            dry_run,
        } => reset(broker, group, topic, *to, *dry_run).await,
    }
}

async fn admin(broker: &BrokerArgs) -> Result<Admin, CliError> {
    let config = AdminConfig::from_properties(broker.all_properties())?;
    Ok(Admin::new(config).await?)
}

async fn list(broker: &BrokerArgs) -> Result<(), CliError> {
    let groups = admin(broker).await?.list_groups().await?;
    let mut out = io::stdout().lock();
    for g in groups {
        let kind = if g.protocol_type.is_empty() {
            "-"
        } else {
            &g.protocol_type
        };
        writeln!(
            out,
            "{}\t{kind}\t{}",
            g.group_id,
            g.state.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

async fn describe(broker: &BrokerArgs, group: &str) -> Result<(), CliError> {
    let admin = admin(broker).await?;
    let description = admin.describe_group(group).await?;
    let committed = admin.list_group_offsets(group, None).await?;
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &description.members {
        for tp in &m.assignment {
            owners.insert(tp.clone(), m.member_id.clone());
        }
    }
    let partitions: BTreeSet<(String, i32)> =
        committed.keys().chain(owners.keys()).cloned().collect();
    let asked: Vec<(&str, i32, OffsetSpec)> = partitions
        .iter()
        .map(|(t, p)| (t.as_str(), *p, OffsetSpec::Latest))
        .collect();
    let ends: BTreeMap<(String, i32), i64> = admin
        .list_offsets(&asked, IsolationLevel::ReadUncommitted)
        .await
        .into_iter()
        .filter_map(|(k, r)| r.ok().map(|l| (k, l.offset)))
        .collect();
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "group {} state {} assignor {} ({} members)",
        description.group_id,
        description.state,
        if description.assignor.is_empty() {
            "-"
        } else {
            &description.assignor
        },
        description.members.len()
    )?;
    for m in &description.members {
        let instance = m
            .group_instance_id
            .as_deref()
            .map(|i| format!(" instance {i}"))
            .unwrap_or_default();
        writeln!(
            out,
            " member {}{instance} client {} host {}: {} partitions",
            m.member_id,
            m.client_id,
            m.host,
            m.assignment.len()
        )?;
    }
    writeln!(out, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tOWNER")?;
    for tp in &partitions {
        let committed = committed.get(tp).map(|c| c.offset);
        let end = ends.get(tp).copied();
        let lag = match (committed, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            (None, Some(e)) => e.to_string(),
            _ => "-".into(),
        };
        let show = |v: Option<i64>| v.map_or("-".to_owned(), |v| v.to_string());
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{lag}\t{}",
            tp.0,
            tp.1,
            show(committed),
            show(end),
            owners.get(tp).map_or("-", String::as_str)
        )?;
    }
    Ok(())
}

async fn reset(
    broker: &BrokerArgs,
    group: &str,
    topic: &str,
    to: Target,
    dry_run: bool,
) -> Result<(), CliError> {
    let admin = admin(broker).await?;
    let description = admin.describe_group(group).await?;
    if !description.members.is_empty() && !dry_run {
        return Err(CliError::Failed(format!(
            "group {group} has {} active members (state {}): stop them before resetting its offsets",
            description.members.len(),
            description.state
        )));
    }
    let partitions = topic_partitions(admin.cluster(), topic, None).await?;
    let lookup = Lookup {
        admin: &admin,
        topic,
        partitions: &partitions,
        isolation: IsolationLevel::ReadUncommitted,
    };
    // Every target ends up within [earliest, latest], as kafka-consumer-groups.sh does: an
    // offset is clamped, and by time a partition with no record that late moves to its end.
    let earliest = lookup.offsets(OffsetSpec::Earliest).await?;
    let latest = lookup.offsets(OffsetSpec::Latest).await?;
    let wanted = match to {
        Target::Earliest => earliest.clone(),
        Target::Latest => latest.clone(),
        Target::Timestamp(t) => lookup.offsets(OffsetSpec::Timestamp(t)).await?,
        Target::Offset(offset) => partitions.iter().map(|p| (*p, offset)).collect(),
    };
    let offsets: Vec<OffsetToCommit> = partitions
        .iter()
        .map(|p| {
            let low = earliest.get(p).copied().unwrap_or(0);
            let high = latest.get(p).copied().unwrap_or(low).max(low);
            let offset = match wanted.get(p).copied() {
                Some(o) if o >= 0 => o.clamp(low, high),
                _ => high,
            };
            OffsetToCommit::new(topic, *p, offset)
        })
        .collect();
    let mut out = io::stdout().lock();
    for o in &offsets {
        writeln!(out, "{}\t{}\t{}", o.topic, o.partition, o.offset)?;
    }
    if !dry_run {
        admin.alter_group_offsets(group, &offsets).await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("earliest").unwrap(), Target::Earliest);
        assert_eq!(parse_target("latest").unwrap(), Target::Latest);
        assert_eq!(parse_target("42").unwrap(), Target::Offset(42));
        assert_eq!(
            parse_target("s@1700000000000").unwrap(),
            Target::Timestamp(1_700_000_000_000)
        );
        for bad in ["", "-1", "s@", "end", "1.5"] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
