//! [`ReadAhead`]: the raw items of a find as a stream, a page at a time, with the next page
//! requested as soon as the current one arrives; [`Decoded`]: those items decoded. Only
//! `Decoded` is generic, so the stream machinery is compiled once, not once per entity.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;

use super::read::{PageRead, RawReader};
use crate::{Item, Result};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A stream of items read page by page, with the next page requested as soon as the current
/// one arrives (one page of read-ahead). Dropping it drops the in-flight request.
pub(crate) struct ReadAhead<'a> {
    buffer: VecDeque<Item>,
    in_flight: Option<BoxFuture<'a, Result<PageRead<Item>>>>,
    reader: RawReader<'a>,
    segment: Option<(i32, i32)>,
    remaining: Option<usize>,
}

impl<'a> ReadAhead<'a> {
    pub(crate) fn new(
        reader: RawReader<'a>,
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

    fn request(&self, start: Option<Item>) -> BoxFuture<'a, Result<PageRead<Item>>> {
        let reader = self.reader.clone();
        let segment = self.segment;
        let want = self.remaining;
        Box::pin(async move { reader.read_raw(start, want, segment, true).await })
    }
}

// No field is structurally pinned (the request future is boxed), so moving it is fine.
impl Unpin for ReadAhead<'_> {}

impl Stream for ReadAhead<'_> {
    type Item = Result<Item>;

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

/// The items of a raw stream decoded into `O`; the stream ends after an item that cannot be
/// decoded (as it ends after a failed request).
pub(crate) struct Decoded<'a, O> {
    items: futures::stream::BoxStream<'a, Result<Item>>,
    decode: fn(Item) -> Result<O>,
    failed: bool,
}

impl<'a, O> Decoded<'a, O> {
    pub(crate) fn new(
        items: futures::stream::BoxStream<'a, Result<Item>>,
        decode: fn(Item) -> Result<O>,
    ) -> Self {
        Decoded {
            items,
            decode,
            failed: false,
        }
    }
}

impl<O> Unpin for Decoded<'_, O> {}

impl<O> Stream for Decoded<'_, O> {
    type Item = Result<O>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        let decoded = match std::task::ready!(this.items.as_mut().poll_next(cx)) {
            Some(Ok(item)) => (this.decode)(item),
            Some(Err(e)) => Err(e),
            None => return Poll::Ready(None),
        };
        this.failed = decoded.is_err();
        Poll::Ready(Some(decoded))
    }
}
