//! The counter format every kvplug backend shares: a value `increment` can add to is the
//! ASCII decimal of a signed 64-bit integer, and an absent key counts as 0. Backends that add
//! inside the adapter (etcd, Azure Table) and the reference server use this one rule, so a
//! counter moves between backends unchanged.

use core::fmt;

/// Why a stored value cannot be incremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterError {
    /// The stored value is not an ASCII decimal integer.
    NotANumber,
    /// The sum leaves the signed 64-bit range.
    Overflow,
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CounterError::NotANumber => "the stored value is not a decimal integer",
            CounterError::Overflow => "overflow: the sum leaves the signed 64-bit range",
        })
    }
}

/// `current` (the stored bytes, `None` if absent) plus `delta`.
pub fn add(current: Option<&[u8]>, delta: i64) -> Result<i64, CounterError> {
    let current = match current {
        None => 0,
        Some(bytes) => core::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.parse::<i64>().ok())
            .ok_or(CounterError::NotANumber)?,
    };
    current.checked_add(delta).ok_or(CounterError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_to_decimals_and_absent_keys() {
        assert_eq!(add(None, 5), Ok(5));
        assert_eq!(add(Some(b"-7"), 10), Ok(3));
        assert_eq!(add(Some(b"x1"), 1), Err(CounterError::NotANumber));
        assert_eq!(add(Some(b""), 1), Err(CounterError::NotANumber));
        assert_eq!(
            add(Some(b"9223372036854775807"), 1),
            Err(CounterError::Overflow)
        );
    }
}
