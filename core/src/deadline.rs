//! The deadline of the `wasi:keyvalue` call being served.
//!
//! `timeout-ms` bounds a whole call, retries and backoff included: a user sets a timeout to
//! bound what their app waits for, and a service that trickles one byte every half second
//! must not keep a call alive for ever. Every export marks the start of its call here; the
//! HTTP client and the retry loops measure what is left against it. A component instance
//! serves one call at a time (the canonical ABI does not re-enter it), so one start time is
//! enough.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::bindings::wasi::clocks::monotonic_clock;
use crate::bindings::wasi::io::poll::{self, Pollable};

static CALL_START_NS: AtomicU64 = AtomicU64::new(0);

/// Marks the start of an exported call.
pub fn begin() {
    CALL_START_NS.store(monotonic_clock::now(), Ordering::Relaxed);
}

/// The instant, on the monotonic clock, at which a call with `budget_ns` must end.
pub fn at(budget_ns: u64) -> u64 {
    CALL_START_NS
        .load(Ordering::Relaxed)
        .saturating_add(budget_ns)
}

/// Nanoseconds left before `deadline` (0 once it has passed).
pub fn remaining(deadline: u64) -> u64 {
    deadline.saturating_sub(monotonic_clock::now())
}

/// Nanoseconds since the call began.
pub fn elapsed() -> u64 {
    monotonic_clock::now().saturating_sub(CALL_START_NS.load(Ordering::Relaxed))
}

/// Blocks until `ready` is ready or `deadline` passes; `false` means the deadline came first.
pub fn wait(ready: &Pollable, deadline: u64) -> bool {
    if ready.ready() {
        return true;
    }
    if remaining(deadline) == 0 {
        return false;
    }
    let timer = monotonic_clock::subscribe_instant(deadline);
    let woken = poll::poll(&[ready, &timer]);
    woken.contains(&0) || ready.ready()
}
