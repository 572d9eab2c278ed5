//! `sluice consume -g GROUP -t TOPIC...`: read as a member of a consumer group (like kcat -G).
//!
//! The group spreads the topics' partitions over its members; each starts where the group's
//! committed offset says (or where `-o beginning|end` says when there is none). sluice commits
//! what it has *printed* (not what it fetched): when partitions are revoked, every few seconds,
//! and on exit, so a member that stops after `-c N` records or on Ctrl-C hands over exactly
//! where it stopped.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::Duration;

use sluice_client::admin::Admin;
use sluice_client::config::{AdminConfig, ConsumerConfig};
use sluice_client::group::{GroupConsumer, GroupEvent, OffsetToCommit};
use tokio::time::Instant;

use crate::consume::Printer;
use crate::ends::Ends;
use crate::CliError;

/// How often printed positions are committed while reading.
const COMMIT_EVERY: Duration = Duration::from_secs(5);
/// How often `-e` looks at the positions while no data comes.
const END_CHECK: Duration = Duration::from_millis(100);

/// What the group mode needs from the command line.
pub(crate) struct GroupRead<'a> {
    pub(crate) group: &'a str,
    pub(crate) topics: &'a [String],
    pub(crate) properties: Vec<(String, String)>,
    pub(crate) from_beginning: bool,
    pub(crate) count: Option<u64>,
    pub(crate) exit_at_end: bool,
}

pub(crate) async fn run(read: GroupRead<'_>, printer: &mut Printer) -> Result<(), CliError> {
    let mut properties = read.properties;
    properties.push(("group.id".into(), read.group.into()));
    // The command commits what it printed itself; an auto-commit would commit what was fetched.
    properties.push(("enable.auto.commit".into(), "false".into()));
    let reset = if read.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    if !properties.iter().any(|(k, _)| k == "auto.offset.reset") {
        properties.push(("auto.offset.reset".into(), reset.into()));
    }
    let config = ConsumerConfig::from_properties(properties)?;
    let mut ends = Ends::new(config.isolation_level());
    let admin = Admin::new(AdminConfig::from(config.client().clone())).await?;
    let mut consumer = GroupConsumer::new(config).await?;
    consumer.subscribe(read.topics);

    let mut printed: u64 = 0;
    // The offset after the last printed record, per partition: what to commit.
    let mut position: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut assigned_once = false;
    let mut next_commit = Instant::now() + COMMIT_EVERY;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if read.exit_at_end && assigned_once {
            let owned = consumer.assignment();
            let inner = consumer.consumer();
            // Printed records count first: the fetch position runs ahead of them.
            let at = |key: &(String, i32)| {
                position
                    .get(key)
                    .copied()
                    .or_else(|| inner.position(&key.0, key.1))
            };
            if ends.all_reached(owned.iter(), at) {
                break;
            }
        }
        // poll_for never cuts a rebalance short; the timeout only bounds waiting for data.
        let wait = if read.exit_at_end {
            END_CHECK
        } else {
            COMMIT_EVERY
        };
        let event = tokio::select! {
            event = consumer.poll_for(wait) => match event? {
                Some(event) => event,
                None => continue,
            },
            _ = &mut ctrl_c => break,
        };
        match event {
            GroupEvent::Batch(batch) => {
                let key = (batch.topic().to_owned(), batch.partition());
                ends.saw(&batch);
                for record in batch.records() {
                    let record = record?;
                    printer.print(&batch, &record)?;
                    position.insert(key.clone(), record.offset() + 1);
                    printed += 1;
                    if read.count == Some(printed) {
                        break;
                    }
                }
                printer.out.flush()?;
                if read.count == Some(printed) {
                    break;
                }
            }
            GroupEvent::Assigned(added) => {
                assigned_once = true;
                if read.exit_at_end {
                    ends.look_up(&admin, &added).await?;
                }
            }
            GroupEvent::Revoked(gone) => {
                commit(&mut consumer, &position, Some(&gone)).await;
                for key in &gone {
                    position.remove(key);
                    ends.forget(key);
                }
            }
            GroupEvent::Lost(gone) => {
                for key in &gone {
                    position.remove(key);
                    ends.forget(key);
                }
            }
        }
        if Instant::now() >= next_commit {
            next_commit = Instant::now() + COMMIT_EVERY;
            commit(&mut consumer, &position, None).await;
        }
    }
    printer.out.flush()?;
    commit(&mut consumer, &position, None).await;
    consumer.close().await?;
    Ok(())
}

/// Commits the printed positions (of `only`, or all); a failure is reported, not fatal: the
/// next commit covers it, and at worst the next owner prints some records again.
async fn commit(
    consumer: &mut GroupConsumer,
    position: &BTreeMap<(String, i32), i64>,
    only: Option<&[(String, i32)]>,
) {
    let offsets: Vec<OffsetToCommit> = position
        .iter()
        .filter(|(key, _)| only.is_none_or(|o| o.contains(key)))
        .map(|((t, p), o)| OffsetToCommit::new(t.clone(), *p, *o))
        .collect();
    if offsets.is_empty() {
        return;
    }
    if let Err(e) = consumer.commit_offsets(&offsets).await {
        let _ = writeln!(io::stderr(), "sluice: warning: commit failed: {e}");
    }
}
