//! `futures::Stream` for the consumer: batches from the consumer itself, records from
//! [`Records`].
//!
//! The consumer streams batches because the batch is its unit: one wake-up and one buffer
//! pop per batch rather than per record, and no copy, which is what the stream layer wants.
//! Records are a thin adapter for applications that think in records.
//!
//! Both streams yield errors as items and go on after them: an error concerns one partition,
//! and polling again is how the others keep flowing. Neither ever ends (`None`): a consumer's
//! input has no end, and a dropped consumer cannot be polled.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use super::{Consumer, ConsumerRecord, FetchedBatch};
use crate::error::Result;

impl Stream for Consumer {
    type Item = Result<FetchedBatch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_batch_inner(cx).map(Some)
    }
}

/// The consumer as a stream of owned records; see [`Consumer::records`].
#[derive(Debug)]
pub struct Records<'a> {
    consumer: &'a mut Consumer,
}

impl<'a> Records<'a> {
    pub(super) fn new(consumer: &'a mut Consumer) -> Self {
        Records { consumer }
    }
}

impl Stream for Records<'_> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().consumer.poll_record(cx).map(Some)
    }
}
