//! The accumulator without a sender: sealing, memory accounting, encoding, completion, flush.

use super::*;
use crate::cluster::PartitionInfo;
use crate::error::{Error, KafkaCode};
use crate::producer::batch::{now_millis, Ack};
use crate::producer::idempotence::{Gate, ProducerIdentity, Sequencer};
use crate::producer::memory::BufferMemory;
use sluice_protocol::record::RecordBatch;
use sluice_protocol::Compressor;

fn topic(partitions: i32) -> TopicInfo {
    TopicInfo {
        name: "t".into(),
        id: [0; 16],
        internal: false,
        partitions: (0..partitions)
            .map(|partition| PartitionInfo {
                partition,
                leader: 1,
                leader_epoch: 0,
                replicas: vec![1],
                isr: vec![1],
                error: None,
            })
            .collect(),
    }
}

fn accumulator(batch_limit: usize, compression: Compression) -> Accumulator {
    let config = AccumulatorConfig {
        batch_limit,
        linger: Duration::from_millis(50),
        delivery_timeout: Duration::from_secs(30),
        compression,
        partitioner: Partitioner::Murmur2,
        sticky: true,
        buffer_memory: 1 << 20,
    };
    Accumulator::new(config, batch_limit)
}

fn record(i: usize) -> ProducerRecord {
    ProducerRecord::new("t")
        .partition(0)
        .key(format!("k{i}"))
        .value(vec![b'v'; 40])
}

/// Appends `record` as `send`'s first pass does, with metadata of 3 partitions.
fn try_append(acc: &Accumulator, memory: &BufferMemory, record: &ProducerRecord) -> Appended {
    let append = Append {
        record,
        size: record.size_upper_bound(),
        now_ms: now_millis(),
        info: None,
        memory: None,
    };
    acc.append(append, memory, |_| Some(Arc::new(topic(3))))
}

fn append(acc: &Accumulator, memory: &BufferMemory, record: ProducerRecord) -> DeliveryFuture {
    match try_append(acc, memory, &record) {
        Appended::Done(delivery) => delivery,
        other => panic!("not appended: {other:?}"),
    }
}

fn queue_lens(acc: &Accumulator) -> (usize, bool) {
    let state = acc.lock();
    state
        .queue("t", 0)
        .map_or((0, false), |q| (q.ready.len(), q.open.is_some()))
}

fn tp0() -> TopicPartition {
    TopicPartition {
        topic: Arc::from("t"),
        partition: 0,
    }
}

impl BufferMemory {
    fn permits_for_test(&self, bytes: usize) -> Reservation {
        futures::executor::block_on(self.reserve(
            bytes,
            Instant::now() + Duration::from_secs(1),
            Duration::from_secs(1),
        ))
        .unwrap()
    }
}

#[tokio::test]
async fn a_batch_is_sealed_before_it_would_outgrow_batch_size() {
    let acc = accumulator(300, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    let bound = record(0).size_upper_bound();
    let mut futures = Vec::new();
    let mut appended = 0;
    while queue_lens(&acc).0 == 0 {
        futures.push(append(&acc, &memory, record(appended)));
        appended += 1;
        assert!(appended < 10, "never sealed");
    }
    assert_eq!(
        queue_lens(&acc),
        (1, true),
        "the record that did not fit opened a new batch"
    );
    let state = acc.lock();
    let sealed = &state.queue("t", 0).unwrap().ready[0];
    assert_eq!(sealed.record_count() as usize, appended - 1);
    assert!(sealed.size() <= 300, "{}", sealed.size());
    assert!(
        sealed.size() + bound > 300,
        "one more record might have fitted"
    );
}

#[tokio::test]
async fn a_record_larger_than_batch_size_gets_a_batch_of_its_own() {
    let acc = accumulator(100, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    let _a = append(
        &acc,
        &memory,
        ProducerRecord::new("t").partition(0).value(vec![0u8; 500]),
    );
    assert_eq!(
        queue_lens(&acc),
        (1, false),
        "sealed at once: it reached batch_size"
    );
    // batch_size 0 (Java: no batching) makes one batch per record.
    let acc = accumulator(0, Compression::None);
    for i in 0..3 {
        drop(append(&acc, &memory, record(i)));
    }
    assert_eq!(queue_lens(&acc), (3, false));
}

#[tokio::test]
async fn linger_seals_the_open_batch_when_due() {
    let acc = accumulator(16 * 1024, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    let _a = append(&acc, &memory, record(0));
    let mut state = acc.lock();
    let queue = state.queue_mut(&tp0()).unwrap();
    let created = queue.open.as_ref().unwrap().created;
    let linger = Duration::from_millis(50);
    assert_eq!(
        queue.seal_if_due(created + Duration::from_millis(10), linger, false),
        Some(created + linger)
    );
    assert!(queue.ready.is_empty());
    assert_eq!(queue.seal_if_due(created + linger, linger, false), None);
    assert_eq!(queue.ready.len(), 1);
    // A flush seals whatever is open, due or not.
    drop(state);
    let _b = append(&acc, &memory, record(1));
    let mut state = acc.lock();
    let queue = state.queue_mut(&tp0()).unwrap();
    assert_eq!(queue.seal_if_due(created, linger, true), None);
    assert_eq!(queue.ready.len(), 2);
}

#[tokio::test]
async fn memory_is_held_by_the_batch_until_it_completes() {
    let acc = accumulator(16 * 1024, Compression::None);
    let memory = BufferMemory::new(10_000);
    let futures: Vec<_> = (0..10).map(|i| append(&acc, &memory, record(i))).collect();
    let used = 10 * record(0).size_upper_bound();
    // The open batch reserves a chunk at a time and holds what its records do not use yet.
    let held = 10_000 - memory.available();
    assert!(
        held >= used && held < used + memory.chunk(),
        "{held} held for {used}"
    );
    let mut batch = acc.lock().take_all().pop().unwrap();
    assert_eq!(
        memory.available(),
        10_000 - used,
        "sealing gives the unused credit back"
    );
    assert_eq!(batch.record_count(), 10);
    let bytes = batch.encode(&mut Compressor::new()).unwrap();
    assert_eq!(
        memory.available(),
        10_000 - used,
        "encoding releases nothing"
    );
    batch.complete(Ack {
        base_offset: 100,
        log_append_time: -1,
    });
    assert_eq!(memory.available(), 10_000);
    for (i, future) in futures.into_iter().enumerate() {
        let metadata = future.await.unwrap();
        assert_eq!(
            (&*metadata.topic, metadata.partition, metadata.offset),
            ("t", 0, 100 + i as i64)
        );
    }
    let batch = RecordBatch::from_bytes(bytes).unwrap();
    batch.verify_crc().unwrap();
    assert_eq!(
        (
            batch.records_count(),
            batch.producer_id(),
            batch.base_sequence()
        ),
        (10, -1, -1)
    );
}

#[tokio::test]
async fn failure_reaches_every_record_and_releases_memory() {
    let acc = accumulator(16 * 1024, Compression::None);
    let memory = BufferMemory::new(10_000);
    let futures: Vec<_> = (0..3).map(|i| append(&acc, &memory, record(i))).collect();
    let batch = acc.lock().take_all().pop().unwrap();
    batch.fail(Error::kafka(KafkaCode::MESSAGE_TOO_LARGE, "t-0"));
    assert_eq!(memory.available(), 10_000);
    for future in futures {
        assert_eq!(
            future.await.unwrap_err().code(),
            Some(KafkaCode::MESSAGE_TOO_LARGE)
        );
    }
    // A batch dropped unanswered (the sender task died) reports Closed.
    let future = append(&acc, &memory, record(9));
    drop(acc.lock().take_all());
    assert!(matches!(future.await, Err(Error::Closed)));
}

#[test]
fn encoding_stamps_and_restamps_the_header() {
    for codec in [Compression::None, Compression::Lz4] {
        let acc = accumulator(16 * 1024, codec);
        let memory = BufferMemory::new(1 << 20);
        for i in 0..5 {
            drop(append(&acc, &memory, record(i)));
        }
        let mut batch = acc.lock().take_all().pop().unwrap();
        let mut sequencer = Sequencer::new(true, 5);
        let tp = batch.tp.clone();
        sequencer.set_producer(ProducerIdentity { id: 42, epoch: 3 });
        let Gate::Send(stamp) = sequencer.gate(&tp, batch.head()) else {
            panic!("gate")
        };
        batch.stamp = stamp;
        let mut compressor = Compressor::new();
        let view = RecordBatch::from_bytes(batch.encode(&mut compressor).unwrap()).unwrap();
        view.verify_crc().unwrap();
        assert_eq!(
            (
                view.producer_id(),
                view.producer_epoch(),
                view.base_sequence()
            ),
            (42, 3, 0)
        );
        assert_eq!(view.compression(), codec);
        // Re-sequenced under a new identity: the same records, a new header and CRC.
        sequencer.on_response(
            &tp,
            stamp,
            super::super::idempotence::Outcome::UnknownProducer,
            true,
            false,
        );
        sequencer.set_producer(ProducerIdentity { id: 43, epoch: 0 });
        let Gate::Send(stamp) = sequencer.gate(&tp, batch.head()) else {
            panic!("gate")
        };
        batch.stamp = stamp;
        let again = RecordBatch::from_bytes(batch.encode(&mut compressor).unwrap()).unwrap();
        again.verify_crc().unwrap();
        assert_eq!(
            (
                again.producer_id(),
                again.producer_epoch(),
                again.base_sequence()
            ),
            (43, 0, 0)
        );
        assert_eq!(again.records_section(), view.records_section());
    }
}

#[tokio::test]
async fn flush_waits_for_the_batches_that_existed() {
    let acc = accumulator(16 * 1024, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    let _a = append(&acc, &memory, record(0));
    assert_eq!(acc.incomplete(), 1);
    let (guard, waiters) = acc.begin_flush();
    assert!(acc.force_ready());
    assert_eq!(waiters.len(), 1);
    let waiter = Arc::clone(&waiters[0]);
    let wait = tokio::spawn(async move { waiter.acquire().await.is_err() });
    tokio::task::yield_now().await;
    assert!(!wait.is_finished());
    acc.lock().take_all().pop().unwrap().complete(Ack {
        base_offset: 0,
        log_append_time: -1,
    });
    assert!(
        wait.await.unwrap(),
        "completion closes the batch's semaphore"
    );
    assert_eq!(acc.incomplete(), 0);
    drop(guard);
    assert!(!acc.force_ready());
}

#[tokio::test]
async fn unkeyed_records_stick_to_one_partition_until_a_batch_is_full() {
    let acc = accumulator(1000, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    for _ in 0..10 {
        drop(append(
            &acc,
            &memory,
            ProducerRecord::new("t").value(vec![0u8; 20]),
        ));
    }
    let state = acc.lock();
    let used = state.used_partitions("t");
    assert_eq!(
        used.len(),
        1,
        "10 small records went to one partition: {used:?}"
    );
}

#[tokio::test]
async fn closing_refuses_records() {
    let acc = accumulator(1000, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    acc.close(Instant::now());
    let record = record(0);
    let outcome = try_append(&acc, &memory, &record);
    assert!(
        matches!(outcome, Appended::Refused(Error::Closed)),
        "{outcome:?}"
    );
    assert!(acc.closing().is_some());
}

#[tokio::test]
async fn no_free_memory_changes_nothing_and_reserved_memory_goes_in() {
    let acc = accumulator(16 * 1024, Compression::None);
    let record = record(0);
    let size = record.size_upper_bound();
    let memory = BufferMemory::new(size * 3 / 2);
    let _first = append(&acc, &memory, record.clone());
    let outcome = try_append(&acc, &memory, &record);
    assert!(matches!(outcome, Appended::NoMemory), "{outcome:?}");
    assert_eq!(
        acc.lock()
            .queue("t", 0)
            .unwrap()
            .open
            .as_ref()
            .unwrap()
            .record_count(),
        1
    );
    // What `send` does next: wait for the bytes (here they are free once the batch is gone)
    // and append with them.
    let batch = acc.lock().take_all().pop().unwrap();
    batch.complete(Ack {
        base_offset: 0,
        log_append_time: -1,
    });
    let reserved = memory.permits_for_test(size);
    let append = Append {
        record: &record,
        size,
        now_ms: now_millis(),
        info: Some(Arc::new(topic(3))),
        memory: Some(reserved),
    };
    let outcome = acc.append(append, &memory, |_| None);
    assert!(matches!(outcome, Appended::Done(_)), "{outcome:?}");
    assert_eq!(memory.available(), size * 3 / 2 - size);
}

#[tokio::test]
async fn unknown_metadata_or_partition_sends_the_caller_to_fetch_it() {
    let acc = accumulator(16 * 1024, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    let record = record(0);
    let append = |record: &ProducerRecord, known: bool| {
        let append = Append {
            record,
            size: record.size_upper_bound(),
            now_ms: now_millis(),
            info: None,
            memory: None,
        };
        acc.append(append, &memory, |_| known.then(|| Arc::new(topic(3))))
    };
    assert!(matches!(append(&record, false), Appended::NoMetadata));
    assert!(matches!(append(&record, true), Appended::Done(_)));
    // Cached now: no lookup until it is stale.
    assert!(matches!(append(&record, false), Appended::Done(_)));
    let free = memory.available();
    let beyond = record.clone().partition(3);
    assert!(matches!(append(&beyond, true), Appended::NoMetadata));
    assert_eq!(memory.available(), free, "nothing reserved for it");
}

#[tokio::test]
async fn a_delivery_future_waits_for_its_batch_and_gets_its_own_offset() {
    let acc = accumulator(16 * 1024, Compression::None);
    let memory = BufferMemory::new(1 << 20);
    let futures: Vec<_> = (0..3).map(|i| append(&acc, &memory, record(i))).collect();
    let waiters: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    tokio::task::yield_now().await;
    assert!(waiters.iter().all(|w| !w.is_finished()));
    acc.lock().take_all().pop().unwrap().complete(Ack {
        base_offset: 7,
        log_append_time: 99,
    });
    for (i, waiter) in waiters.into_iter().enumerate() {
        let metadata = waiter.await.unwrap().unwrap();
        assert_eq!((metadata.offset, metadata.timestamp), (7 + i as i64, 99));
    }
}
