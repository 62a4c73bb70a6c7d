//! A response body read from a pooled connection: it enforces the request's between-bytes
//! timeout, and hands the connection back to the pool once the body has been read to its end.
//! A body dropped before its end takes its connection down with it: the rest of that response
//! would still be on the wire.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, WasiBody};

type Return = Box<dyn FnOnce(SendRequest<WasiBody>) + Send>;

pub struct PooledBody {
    incoming: Incoming,
    gap: Duration,
    /// When the next byte is due; armed only when a read finds nothing yet, so a body that
    /// arrives with its head costs no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The connection and how to give it back, until the body ends.
    connection: Option<(SendRequest<WasiBody>, Return)>,
    /// The authority's connection slot, held while this connection is busy.
    permit: Option<OwnedSemaphorePermit>,
}

impl PooledBody {
    pub fn new(
        incoming: Incoming,
        gap: Duration,
        give_back: impl FnOnce(SendRequest<WasiBody>) + Send + 'static,
        sender: SendRequest<WasiBody>,
        permit: OwnedSemaphorePermit,
    ) -> PooledBody {
        let mut body = PooledBody {
            incoming,
            gap,
            deadline: None,
            connection: Some((sender, Box::new(give_back))),
            permit: Some(permit),
        };
        // A body that is empty from the start (a HEAD, a 204) frees its connection at once.
        if body.incoming.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((sender, give_back)) = self.connection.take() {
            give_back(sender);
        }
        self.permit = None;
    }

    fn fail(&mut self, error: Error) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.connection = None;
        self.permit = None;
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(None) => {
                this.release();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                // The wait for the next byte starts now.
                this.deadline = None;
                if this.incoming.is_end_stream() {
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) if error.is_timeout() => {
                this.fail(Error::HttpResponseTimeout)
            }
            Poll::Ready(Some(Err(error))) => this.fail(Error::from(error)),
            Poll::Pending => {
                let gap = this.gap;
                let deadline = this.deadline.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until(Instant::now() + gap))
                });
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => this.fail(Error::ConnectionReadTimeout),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}
