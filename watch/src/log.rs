//! Lines on the runtime's stderr: what the driver watches, why it retries, why it stopped.

use alloc::vec::Vec;

use crate::bindings::wasi::cli::stderr;

/// Writes `text` and a newline. A failed write is ignored: there is nowhere else to say it.
pub fn line(text: &str) {
    let stream = stderr::get_stderr();
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    // Lines are short; `blocking-write-and-flush` takes up to 4096 bytes at a time.
    for piece in bytes.chunks(4096) {
        if stream.blocking_write_and_flush(piece).is_err() {
            return;
        }
    }
}
