//! Bucket names, keys and cursors as single URL path segments.
//!
//! Every byte of the UTF-8 name outside `[A-Za-z0-9_-]` becomes `%XX`. Encoding `.` means no
//! segment is ever `.` or `..`, which URL normalisers would collapse; encoding `/ ? # %` means
//! a name can never reach another segment, the query or the fragment. The empty name, which
//! would be an empty segment that proxies merge away, is written `~` (a literal `~` is `%7E`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The segment standing for the empty name.
pub const EMPTY: &str = "~";

/// Why a path segment is not an encoded name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A byte that an encoder would have escaped appears raw.
    Unescaped(char),
    /// The decoded bytes are not UTF-8.
    NotUtf8,
    /// An empty segment: [`encode`] writes the empty name as [`EMPTY`].
    Empty,
    /// A byte that an encoder leaves plain appears escaped (`%36` for `6`).
    NeedlessEscape(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::BadEscape => f.write_str("`%` must be followed by two hex digits"),
            NameError::Unescaped(c) => write!(f, "character {c:?} must be percent-encoded"),
            NameError::NotUtf8 => f.write_str("percent-decoded bytes are not UTF-8"),
            NameError::Empty => {
                f.write_str("an empty segment is not a name (the empty name is `~`)")
            }
            NameError::NeedlessEscape(c) => {
                write!(f, "character {c:?} must not be percent-encoded")
            }
        }
    }
}

/// What a name segment escapes: every byte but `A-Za-z0-9_-`.
const NAME_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// What [`decode`] takes unescaped: the complement of [`NAME_SEGMENT`] (a test checks).
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'
}

/// The path segment for `name`.
pub fn encode(name: &str) -> String {
    if name.is_empty() {
        return String::from(EMPTY);
    }
    utf8_percent_encode(name, NAME_SEGMENT).collect()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The name a path segment stands for. Strict: anything [`encode`] would not produce, apart
/// from lower-case hex digits, is an error, so one name has one spelling.
pub fn decode(segment: &str) -> Result<String, NameError> {
    if segment == EMPTY {
        return Ok(String::new());
    }
    // Found by fuzzing (fuzz/regressions/names): without these two refusals, `` and `~`
    // both meant the empty name, and `a%36` and `a6` the same key, so a rule on one spelling
    // of a path (a proxy's, say) would miss the other.
    if segment.is_empty() {
        return Err(NameError::Empty);
    }
    let mut bytes = Vec::with_capacity(segment.len());
    let mut rest = segment.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let (hi, lo, tail) = match tail {
                [hi, lo, tail @ ..] => (*hi, *lo, tail),
                _ => return Err(NameError::BadEscape),
            };
            let (Some(hi), Some(lo)) = (hex_value(hi), hex_value(lo)) else {
                return Err(NameError::BadEscape);
            };
            let decoded = hi << 4 | lo;
            if is_plain(decoded) {
                return Err(NameError::NeedlessEscape(char::from(decoded)));
            }
            bytes.push(decoded);
            rest = tail;
        } else if is_plain(byte) {
            bytes.push(byte);
            rest = tail;
        } else {
            return Err(NameError::Unescaped(char::from(byte)));
        }
    }
    String::from_utf8(bytes).map_err(|_| NameError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_has_one_spelling() {
        assert_eq!(decode(""), Err(NameError::Empty));
        assert_eq!(decode("~"), Ok(String::new()));
        assert_eq!(decode("a%36"), Err(NameError::NeedlessEscape('6')));
        assert_eq!(decode("n%6Ftes"), Err(NameError::NeedlessEscape('o')));
        assert_eq!(decode("%2D"), Err(NameError::NeedlessEscape('-')));
        assert_eq!(decode("a%2E"), Ok(String::from("a.")));
    }

    #[test]
    fn round_trips_awkward_names() {
        for name in [
            "",
            "~",
            "plain-Name_09",
            "a/b?c#d%e",
            "..",
            ".",
            " spaces and\ttabs\n",
            "héllo wörld ✓ 🦀",
            "\0nul",
            "%41",
        ] {
            let encoded = encode(name);
            assert!(
                encoded
                    .bytes()
                    .all(|b| is_plain(b) || b == b'%' || b == b'~'),
                "{encoded}"
            );
            assert_ne!(encoded, "..");
            assert_eq!(decode(&encoded).as_deref(), Ok(name), "{name:?}");
        }
    }

    #[test]
    fn decode_takes_plain_exactly_what_encode_leaves_plain() {
        for byte in 0..=0x7f_u8 {
            let name = String::from(char::from(byte));
            assert_eq!(encode(&name) == name, is_plain(byte), "{byte:#x}");
        }
    }

    #[test]
    fn tilde_is_only_the_empty_name() {
        assert_eq!(encode("~"), "%7E");
        assert_eq!(encode(""), "~");
        assert_eq!(decode("a~"), Err(NameError::Unescaped('~')));
    }

    #[test]
    fn rejects_what_an_encoder_never_writes() {
        assert_eq!(decode("a/b"), Err(NameError::Unescaped('/')));
        assert_eq!(decode("a.b"), Err(NameError::Unescaped('.')));
        assert_eq!(decode("%4"), Err(NameError::BadEscape));
        assert_eq!(decode("%zz"), Err(NameError::BadEscape));
        assert_eq!(decode("%FF"), Err(NameError::NotUtf8));
        assert_eq!(decode("%c3%a9").as_deref(), Ok("é"));
    }
}
