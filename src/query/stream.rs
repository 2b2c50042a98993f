//! [`ReadAhead`]: the items of a find as a stream, a page at a time, with the next page
//! requested as soon as the current one arrives.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use super::read::{PageRead, Reader};
use crate::{Item, Result};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream of items read page by page, with the next page requested as soon as the current
/// one arrives (one page of read-ahead). Dropping it drops the in-flight request.
pub(crate) struct ReadAhead<'a, O> {
    buffer: VecDeque<O>,
    in_flight: Option<BoxFuture<'a, Result<PageRead<O>>>>,
    reader: Reader<'a, O>,
    segment: Option<(i32, i32)>,
    remaining: Option<usize>,
}

impl<'a, O: Send + 'static> ReadAhead<'a, O> {
    pub(crate) fn new(
        reader: Reader<'a, O>,
        segment: Option<(i32, i32)>,
        limit: Option<usize>,
    ) -> Self {
        let start = reader.start.clone();
        let mut this = ReadAhead {
            buffer: VecDeque::new(),
            in_flight: None,
            reader,
            segment,
            remaining: limit,
        };
        if limit != Some(0) {
            this.in_flight = Some(this.request(start));
        }
        this
    }

    fn request(&self, start: Option<Item>) -> BoxFuture<'a, Result<PageRead<O>>> {
        let reader = self.reader.clone();
        let segment = self.segment;
        let want = self.remaining;
        Box::pin(async move { reader.read(start, want, segment, true).await })
    }
}

// No field is structurally pinned (the request future is boxed), so moving it is fine.
impl<O> Unpin for ReadAhead<'_, O> {}

impl<'a, O: Send + 'static> Stream for ReadAhead<'a, O> {
    type Item = Result<O>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(fut) = this.in_flight.as_mut() {
                match fut.as_mut().poll(cx) {
                    Poll::Ready(Ok((items, next))) => {
                        this.in_flight = None;
                        let n = items.len();
                        this.buffer.extend(items);
                        this.remaining = this.remaining.map(|r| r.saturating_sub(n));
                        if let Some(next) = next {
                            if this.remaining != Some(0) {
                                this.in_flight = Some(this.request(Some(next)));
                                continue; // poll the new request once so it starts
                            }
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        this.in_flight = None;
                        this.buffer.clear();
                        return Poll::Ready(Some(Err(e)));
                    }
                    Poll::Pending => {}
                }
            }
            if let Some(item) = this.buffer.pop_front() {
                return Poll::Ready(Some(Ok(item)));
            }
            return if this.in_flight.is_none() {
                Poll::Ready(None)
            } else {
                Poll::Pending
            };
        }
    }
}
