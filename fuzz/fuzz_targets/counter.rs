//! `kvplug_protocol::counter`: the stored-value format `increment` reads (etcd, DynamoDB's
//! conversion, Azure Table, the reference server), which must accept exactly what Redis's
//! `INCRBY` accepts. Input: 8 bytes of a little-endian delta (zero if shorter), then the stored
//! value. Checked against an independent statement of the grammar (`0`, or an optional `-`, a
//! digit 1–9 and digits, within i64) evaluated in i128, for `parse` and for `add`.
//!
//! Budget: none at all (parsing a counter never allocates).
#![no_main]

use kvplug_fuzz::budget::Budget;
use kvplug_protocol::counter::{self, CounterError};
use libfuzzer_sys::fuzz_target;

/// The grammar, restated: the value or `None`.
fn reference(bytes: &[u8]) -> Option<i64> {
    let (negative, digits) = match bytes.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, bytes),
    };
    let canonical = match digits {
        [b'0'] => !negative,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical || digits.len() > 20 {
        return None;
    }
    let magnitude = digits
        .iter()
        .fold(0i128, |n, d| n * 10 + i128::from(d - b'0'));
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let (delta, value) = match data.split_first_chunk::<8>() {
        Some((delta, value)) => (i64::from_le_bytes(*delta), value),
        None => (0, data),
    };
    let parsed = Budget::NONE.run(value.len(), || counter::parse(value));
    assert_eq!(parsed, reference(value));
    let sum = Budget::NONE.run(value.len(), || counter::add(Some(value), delta));
    let expected = match reference(value) {
        None => Err(CounterError::NotANumber),
        Some(n) => i64::try_from(i128::from(n) + i128::from(delta)).map_err(|_| CounterError::Overflow),
    };
    assert_eq!(sum, expected);
    assert_eq!(counter::add(None, delta), Ok(delta));
});
