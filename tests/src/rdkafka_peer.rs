//! librdkafka (through the `rdkafka` crate) as a reference peer.
//!
//! It does what sluice cannot do yet (create topics) and is the other side of interop tests.
//! Only tests and benches may link it: the library crates stay free of C.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// Bounds every admin step; a local broker answers in milliseconds.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A librdkafka client config for the broker at `bootstrap`.
pub fn rdkafka_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    config
}

/// Creates `topic` with `partitions` partitions (replication factor 1) on the broker at
/// `bootstrap` with librdkafka's admin client, and returns once the broker's metadata lists
/// every partition with a leader.
///
/// A stopgap until sluice has its own admin client. Waiting for the metadata matters on Tansu:
/// it answers a produce to a partition it does not know with success and drops the records.
///
/// Panics if the broker refuses the topic (for instance because it exists already).
pub async fn create_topic_with_rdkafka(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = rdkafka_config(bootstrap)
        .create()
        .unwrap_or_else(|e| panic!("cannot create an rdkafka admin client for {bootstrap}: {e}"));
    let options = AdminOptions::new()
        .request_timeout(Some(ADMIN_TIMEOUT))
        .operation_timeout(Some(ADMIN_TIMEOUT));
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .unwrap_or_else(|e| panic!("CreateTopics {topic} on {bootstrap} failed: {e}"));
    for result in results {
        if let Err((name, code)) = result {
            panic!("CreateTopics {name} on {bootstrap} failed: {code:?}");
        }
    }
    let topic = topic.to_owned();
    // fetch_metadata blocks; keep it off the runtime's threads.
    tokio::task::spawn_blocking(move || wait_for_leaders(&admin, &topic, partitions))
        .await
        .expect("the metadata wait panicked");
}

fn wait_for_leaders(admin: &AdminClient<DefaultClientContext>, topic: &str, partitions: i32) {
    let deadline = Instant::now() + ADMIN_TIMEOUT;
    let mut last_seen = String::from("no metadata yet");
    while Instant::now() < deadline {
        match admin.inner().fetch_metadata(Some(topic), ADMIN_TIMEOUT) {
            Ok(metadata) => {
                let listed = metadata.topics().iter().find(|t| t.name() == topic);
                let leaders = listed.map_or(0, |t| {
                    t.partitions().iter().filter(|p| p.leader() >= 0).count()
                });
                if usize::try_from(partitions).is_ok_and(|n| n == leaders) {
                    return;
                }
                last_seen = format!("{leaders} partitions with a leader");
            }
            Err(error) => last_seen = format!("Metadata failed: {error}"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "topic {topic} did not get {partitions} partitions with leaders in {ADMIN_TIMEOUT:?}: \
         {last_seen}"
    );
}
