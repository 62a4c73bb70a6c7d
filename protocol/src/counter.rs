//! The counter format every kvplug backend shares: a value `increment` can add to is the
//! ASCII decimal of a signed 64-bit integer, and an absent key counts as 0. Backends that add
//! inside the adapter (etcd, DynamoDB's conversion, Azure Table) and the reference server use
//! this one rule, so a counter moves between backends unchanged.
//!
//! The grammar is exactly what Redis's `INCRBY` accepts (`string2ll`), because Redis cannot
//! be told otherwise and an app must see the same answer on every backend: `0`, or an
//! optional `-` and a digit `1`–`9` followed by digits, within `i64`. So `+5`, `05`, `-0`,
//! ` 5`, `5 `, `1e3` and the empty value are not counters.

use core::fmt;

/// Why a stored value cannot be incremented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CounterError {
    /// The stored value does not follow the counter grammar.
    NotANumber,
    /// The sum leaves the signed 64-bit range.
    Overflow,
}

impl fmt::Display for CounterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CounterError::NotANumber => {
                "the stored value is not a decimal counter (`0`, or an optional `-` and digits \
                 without a leading zero, within the signed 64-bit range)"
            }
            CounterError::Overflow => "overflow: the sum leaves the signed 64-bit range",
        })
    }
}

/// The counter `bytes` hold, if they follow the grammar above.
pub fn parse(bytes: &[u8]) -> Option<i64> {
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    let well_formed = match digits.split_first() {
        // A lone `0` is the only number that starts with `0`, and it has no sign.
        Some((b'0', [])) => digits.len() == bytes.len(),
        Some((b'1'..=b'9', rest)) => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !well_formed {
        return None;
    }
    // Only the range is left to check, and `i64`'s parser does that (from `i64::MIN`).
    core::str::from_utf8(bytes).ok()?.parse::<i64>().ok()
}

/// `current` (the stored bytes, `None` if absent) plus `delta`.
pub fn add(current: Option<&[u8]>, delta: i64) -> Result<i64, CounterError> {
    let current = match current {
        None => 0,
        Some(bytes) => parse(bytes).ok_or(CounterError::NotANumber)?,
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
        assert_eq!(
            add(Some(b"-9223372036854775808"), -1),
            Err(CounterError::Overflow)
        );
        assert_eq!(add(Some(b"-9223372036854775807"), -1), Ok(i64::MIN));
    }

    #[test]
    fn accepts_exactly_what_redis_incrby_accepts() {
        let counters: [(&[u8], i64); 7] = [
            (b"0", 0),
            (b"5", 5),
            (b"-5", -5),
            (b"10", 10),
            (b"-100", -100),
            (b"9223372036854775807", i64::MAX),
            (b"-9223372036854775808", i64::MIN),
        ];
        for (bytes, value) in counters {
            assert_eq!(parse(bytes), Some(value), "{:?}", bytes.escape_ascii());
        }
        let refused: [&[u8]; 17] = [
            b"",
            b"-",
            b"+5",
            b"05",
            b"00",
            b"-0",
            b"-05",
            b" 5",
            b"5 ",
            b"5\n",
            b"1e3",
            b"5.0",
            b"0x10",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999999",
            b"\xff5",
        ];
        for bytes in refused {
            assert_eq!(parse(bytes), None, "{:?}", bytes.escape_ascii());
        }
    }
}
