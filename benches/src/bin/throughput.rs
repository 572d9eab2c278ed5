fn main() {
    let _ = rskafka::client::ClientBuilder::new(vec![]);
    let _: rdkafka::ClientConfig = rdkafka::ClientConfig::new();
    let _ = sluice_client::config::ProducerConfig::builder();
}
