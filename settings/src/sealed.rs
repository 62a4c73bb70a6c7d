//! How `kvplug seal` stores settings inside `kvplug-config-static.wasm`.
//!
//! The component carries a fixed-size slot in a data segment: [`MAGIC`], a little-endian
//! `u32` length, then [`CAPACITY`] bytes. Sealing finds the magic in the artifact and writes
//! the length and the encoded pairs in place; the component's size and validity do not
//! change, so no re-encoding is needed. A pair is a `u32` LE key length, the key, a `u32`
//! LE value length, the value.

use alloc::string::String;
use alloc::vec::Vec;

/// Marks the slot; exactly once in an unsealed config component.
pub const MAGIC: [u8; 32] = *b"kvplug:sealed-settings:v1:slot::";

/// Bytes available for encoded settings.
pub const CAPACITY: usize = 16 << 10;

/// Encodes `pairs`; fails if they do not fit the slot.
pub fn encode(pairs: &[(String, String)]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for (key, value) in pairs {
        for part in [key.as_bytes(), value.as_bytes()] {
            let len = u32::try_from(part.len()).map_err(|_| String::from("setting too long"))?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(part);
        }
    }
    if out.len() > CAPACITY {
        return Err(alloc::format!(
            "the settings take {} bytes; a sealed config holds at most {CAPACITY}",
            out.len()
        ));
    }
    Ok(out)
}

fn take<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    let (len, tail) = rest.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_le_bytes(*len)).ok()?;
    if tail.len() < len {
        return None;
    }
    let (part, tail) = tail.split_at(len);
    *rest = tail;
    core::str::from_utf8(part).ok()
}

/// Decodes what [`encode`] wrote; stops at the first malformed pair.
pub fn decode(mut bytes: &[u8]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    while !bytes.is_empty() {
        let (Some(key), Some(value)) = (take(&mut bytes), take(&mut bytes)) else {
            break;
        };
        pairs.push((String::from(key), String::from(value)));
    }
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_does_not_fit() {
        let pairs = alloc::vec![
            (String::from("url"), String::from("http://127.0.0.1:1")),
            (String::from("buckets"), String::new()),
        ];
        assert_eq!(decode(&encode(&pairs).unwrap()), pairs);
        let huge = alloc::vec![(String::from("token"), "x".repeat(CAPACITY))];
        assert!(encode(&huge).unwrap_err().contains("at most"));
        assert_eq!(decode(&[5, 0, 0, 0, b'a']), alloc::vec![]);
    }
}
