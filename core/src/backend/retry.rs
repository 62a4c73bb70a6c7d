//! Sending a request again while the service turns it away for now (throttled, busy), with
//! jittered exponential backoff, within the call's deadline. Written once for the backends
//! whose services ask for it; each says only which answers mean "busy" and how to name them.

use alloc::format;
use alloc::string::String;

use crate::client::Client;
use crate::clock;
use crate::error::Error;

/// How often and how patiently a backend repeats a request the service turned away.
pub struct Policy {
    /// Repeats after the first try.
    pub retries: u32,
    /// The first wait; each further wait doubles, up to `cap_ms`.
    pub base_ms: u64,
    pub cap_ms: u64,
}

/// Whether a request may be sent again after the service turned it away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// Reads, and writes that leave the same state however often they run.
    Always,
    /// Conditional writes and increments: only when the service says it did not act (it
    /// throttled the request). After an unknown outcome (a 5xx) a repeat could apply twice,
    /// or see its own write as a conflict.
    IfRefused,
}

impl Repeat {
    /// Whether a request the service turned away may be sent again; `refused`: the service
    /// said it did nothing.
    pub fn allows(self, refused: bool) -> bool {
        refused || self == Repeat::Always
    }
}

/// What one try came to.
pub enum Attempt<T> {
    Done(T),
    /// Turned away for now, and safe to send again: the status and the service's reason,
    /// for the error if the retries run out (scrubbed there; "busy" when empty).
    Busy {
        status: u16,
        reason: String,
    },
}

impl Policy {
    /// Waits before repeat number `round` (from 0), if the call's deadline leaves time for
    /// the wait; `false` (without waiting) when it does not.
    pub fn pause(&self, client: &Client, round: u32) -> bool {
        client.pause(clock::backoff_ms(round, self.base_ms, self.cap_ms))
    }

    /// Runs `once` until it is done, fails, or has been busy `retries + 1` times (or the
    /// deadline leaves no time for another wait); then an error that names `request` (the
    /// method and path, as messages name them), the last status and reason, and why the
    /// adapter stopped.
    pub fn run<T>(
        &self,
        client: &Client,
        request: &str,
        mut once: impl FnMut() -> Result<Attempt<T>, Error>,
    ) -> Result<T, Error> {
        let mut retries = 0;
        loop {
            let (status, reason) = match once()? {
                Attempt::Done(done) => return Ok(done),
                Attempt::Busy { status, reason } => (status, reason),
            };
            if retries < self.retries && self.pause(client, retries) {
                retries += 1;
                continue;
            }
            let mut reason = client.scrub(&reason);
            if reason.is_empty() {
                reason.push_str("busy");
            }
            let why = if retries < self.retries {
                "the call's deadline (`timeout-ms`) leaves no time for another retry"
            } else {
                "retries exhausted"
            };
            return Err(Error::GaveUp(format!(
                "{request}: HTTP {status}: {reason}: still refused after {retries} retries with backoff ({why})"
            )));
        }
    }
}
