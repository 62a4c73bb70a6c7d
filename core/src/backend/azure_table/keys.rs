//! Key fields and values as the Table service stores them: the `~XX` escaping of keys and
//! bucket names, the service's limits, and the split of a value into 64 KiB properties.

use alloc::format;
use alloc::string::String;
use core::fmt::Write as _;

use kvplug_settings::layout;

use crate::error::Error;

/// The service's limit for one binary property.
pub const PART_BYTES: usize = 64 * 1024;
/// The largest value stored. An entity may hold 1 MiB; the service counts the stored bytes,
/// but Azurite counts the request's JSON, where the value is base64 (4/3). 750 KiB is
/// 1,024,000 base64 characters, which leaves room for the longest keys and the property
/// names, so every value this backend accepts is stored by both.
pub const MAX_VALUE: usize = 750 * 1024;
pub use kvplug_settings::backend::AZURE_MAX_KEY_UNITS as MAX_KEY_UNITS;
use kvplug_settings::backend::{azure_escaped as escaped, azure_field};
/// The escape of key fields: unreserved in URLs, plain in OData literals and JSON.
const ESCAPE: char = '~';

/// `text` with `~XX` for the characters the service refuses or mishandles and for those
/// `also` names; the empty string stays empty.
pub fn escape_field(text: &str, also: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if escaped(c) || also(c) {
            // Every escaped character is below U+00A0: two hex digits hold it.
            let _ = write!(out, "{ESCAPE}{:02X}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// The key field for `key`: `~XX` for the characters the service refuses or mishandles,
/// a lone `~` for the empty string.
pub fn encode_key(key: &str) -> String {
    if key.is_empty() {
        return String::from(ESCAPE);
    }
    escape_field(key, |_| false)
}

/// A bucket name as it follows the marker in the `PartitionKey`: as a key, and the marker
/// escaped, so the field holds exactly one marker, the one that ends the prefix.
pub fn encode_bucket(bucket: &str) -> String {
    if bucket.is_empty() {
        return String::from(ESCAPE);
    }
    escape_field(bucket, |c| c == layout::MARKER)
}

/// The key a key field spells, if it is one `encode_key` writes.
pub fn decode_key(field: &str) -> Option<String> {
    if field == "~" {
        return Some(String::new());
    }
    if field.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == ESCAPE {
            let high = chars.next().and_then(upper_hex)?;
            let low = chars.next().and_then(upper_hex)?;
            let decoded = char::from(high * 16 + low);
            // Only the spelling `encode_key` gives: one key, one field.
            if !escaped(decoded) {
                return None;
            }
            out.push(decoded);
        } else if escaped(c) {
            return None;
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn upper_hex(c: char) -> Option<u8> {
    match c {
        '0'..='9' | 'A'..='F' => c.to_digit(16).and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

/// The key field of `key`, refused before anything is sent when the service would refuse it.
pub fn key_field(key: &str, what: &str) -> Result<String, Error> {
    check_field(encode_key(key), what)
}

/// `field`, refused when longer than the service takes.
pub fn check_field(field: String, what: &str) -> Result<String, Error> {
    azure_field(field.encode_utf16().count(), what).map_err(Error::Invalid)?;
    Ok(field)
}

pub fn check_key(key: &str) -> Result<(), Error> {
    key_field(key, "key").map(drop)
}

pub fn check_value(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE {
        return Err(Error::Invalid(format!(
            "azure-table stores values of at most {MAX_VALUE} bytes (750 KiB, which base64 makes the 1 MiB an entity's JSON may take); this one is {} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// The properties a value is split into; an empty value is one empty property.
pub fn parts(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let first = value.is_empty().then_some(empty);
    first.into_iter().chain(value.chunks(PART_BYTES))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const AWKWARD: [&str; 20] = [
        "",
        "~",
        "/",
        "a/b",
        "../b/keys/x",
        "?x=1&y=2",
        "#frag",
        "%2F",
        "~2F",
        "100%",
        "it's",
        "back\\slash",
        " spaced key ",
        "tab\tnewline\n",
        "\u{7f}\u{80}\u{9f}\u{a0}",
        "héllo wörld",
        "日本語のキー",
        "🦀",
        "\u{0}nul",
        "plain-key_1.2",
    ];

    #[test]
    fn keys_round_trip_through_fields_the_service_accepts() {
        let mut fields = alloc::collections::BTreeSet::new();
        for key in AWKWARD {
            let field = encode_key(key);
            assert!(!field.is_empty(), "{key:?}");
            assert!(
                !field
                    .chars()
                    .any(|c| matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'') || c.is_control()),
                "{key:?} -> {field:?}"
            );
            assert_eq!(decode_key(&field).as_deref(), Some(key), "{field:?}");
            assert!(fields.insert(field), "two keys share a field: {key:?}");
        }
        assert_eq!(encode_key("plain-key_1.2"), "plain-key_1.2");
        assert_eq!(encode_key("a/b?"), "a~2Fb~3F");
        assert_eq!(encode_key(""), "~");
        assert_eq!(encode_key("~"), "~7E");
        assert_eq!(encode_key("\u{85}"), "~85");
    }

    #[test]
    fn only_the_canonical_spelling_decodes() {
        for field in [
            "", "~61", "~2f", "~2", "~", "a~", "a/b", "50%", "it's", "~G0",
        ] {
            if field == "~" {
                assert_eq!(decode_key(field).as_deref(), Some(""));
            } else {
                assert_eq!(decode_key(field), None, "{field:?}");
            }
        }
    }

    #[test]
    fn long_keys_are_refused_naming_the_limit() {
        assert!(key_field(&"k".repeat(512), "key").is_ok());
        let Err(Error::Invalid(message)) = key_field(&"k".repeat(513), "key") else {
            panic!("513 units must be refused");
        };
        assert!(
            message.contains("1 KiB") && message.contains("513"),
            "{message}"
        );
        // Escaping triples a character; astral characters take two UTF-16 units.
        assert!(key_field(&"/".repeat(171), "key").is_err());
        assert!(key_field(&"/".repeat(170), "key").is_ok());
        assert!(key_field(&"🦀".repeat(256), "key").is_ok());
        assert!(key_field(&"🦀".repeat(257), "key").is_err());
    }

    #[test]
    fn values_split_into_parts_of_64_kib() {
        assert_eq!(parts(b"").map(<[u8]>::len).collect::<Vec<_>>(), [0]);
        assert_eq!(parts(b"abc").map(<[u8]>::len).collect::<Vec<_>>(), [3]);
        let big = alloc::vec![7u8; 2 * PART_BYTES + 1];
        assert_eq!(
            parts(&big).map(<[u8]>::len).collect::<Vec<_>>(),
            [PART_BYTES, PART_BYTES, 1]
        );
        assert!(check_value(&alloc::vec![0; MAX_VALUE]).is_ok());
        let Err(Error::Invalid(message)) = check_value(&alloc::vec![0; MAX_VALUE + 1]) else {
            panic!("one byte over must be refused");
        };
        assert!(
            message.contains("768000") && message.contains("768001"),
            "{message}"
        );
    }
}
