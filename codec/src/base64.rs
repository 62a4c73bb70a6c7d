//! Base64 with the standard alphabet and `=` padding (RFC 4648 §4), as etcd and DynamoDB use for
//! binary fields.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Marks bytes outside the alphabet; any value above 63 works, the decoder ORs them together.
const INVALID: u8 = 0xFF;

#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an index out of bounds fails the build, not the adapter"
)]
const DECODE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Why [`decode`] rejected its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A byte outside the alphabet, or `=` anywhere but the end.
    InvalidByte,
    /// A length no encoder produces (one leftover symbol, or padding that does not fill a group).
    InvalidLength,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidByte => "invalid base64 byte",
            Self::InvalidLength => "invalid base64 length",
        })
    }
}

impl core::error::Error for DecodeError {}

/// The six bits of `v` at the bottom, as a symbol.
#[expect(clippy::indexing_slicing, reason = "the mask keeps the index below 64")]
fn symbol(v: u32) -> u8 {
    ALPHABET[(v & 63) as usize]
}

#[expect(clippy::indexing_slicing, reason = "a byte indexes a 256-entry table")]
fn value(b: u8) -> u8 {
    DECODE[usize::from(b)]
}

/// Returns `input` encoded, padded.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::new();
    encode_into(&mut out, input);
    out
}

/// Appends `input` encoded, padded, to `out`.
pub fn encode_into(out: &mut String, input: &[u8]) {
    let groups = input.chunks_exact(3);
    let tail = groups.remainder();
    let body_len = input.len() / 3 * 4;
    let len = input.len().div_ceil(3).saturating_mul(4);

    // Writing into a zeroed byte buffer lets the loop store whole groups without capacity checks;
    // the price is one copy and one UTF-8 check of the new part only (checking all of `out`
    // would make appending many values to one request body quadratic).
    let mut buf = alloc::vec![0u8; len];
    if let Some((body, last)) = buf.split_at_mut_checked(body_len) {
        for (o, i) in body.chunks_exact_mut(4).zip(groups) {
            if let ([o0, o1, o2, o3], &[a, b, c]) = (o, i) {
                let n = u32::from(a) << 16 | u32::from(b) << 8 | u32::from(c);
                *o0 = symbol(n >> 18);
                *o1 = symbol(n >> 12);
                *o2 = symbol(n >> 6);
                *o3 = symbol(n);
            }
        }
        match (tail, last) {
            (&[a], [o0, o1, o2, o3]) => {
                let n = u32::from(a) << 16;
                *o0 = symbol(n >> 18);
                *o1 = symbol(n >> 12);
                *o2 = b'=';
                *o3 = b'=';
            }
            (&[a, b], [o0, o1, o2, o3]) => {
                let n = u32::from(a) << 16 | u32::from(b) << 8;
                *o0 = symbol(n >> 18);
                *o1 = symbol(n >> 12);
                *o2 = symbol(n >> 6);
                *o3 = b'=';
            }
            _ => {}
        }
    }
    // Every byte written is ASCII, so this cannot fail; the default only spares a panic path.
    out.reserve(len);
    out.push_str(core::str::from_utf8(&buf).unwrap_or_default());
}

/// Decodes padded or unpadded input. Bits below the last full byte are ignored, not checked.
pub fn decode(input: &str) -> Result<Vec<u8>, DecodeError> {
    let text = unpadded(input.as_bytes());
    let mut out = alloc::vec![0; decoded_len(text.len())?];
    check(decode_block(text, &mut out))?;
    Ok(out)
}

/// Decodes the base64 text that fills `buf` into the start of `buf`, and returns the decoded
/// length. A value that arrives as base64 in an answer is decoded where it lies: no second
/// buffer of the value's size.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, DecodeError> {
    // Output never overtakes input (3 bytes out for every 4 in), so each block is copied
    // out before its own bytes are overwritten.
    const BLOCK: usize = 4096;
    let len = unpadded(buf).len();
    let total = decoded_len(len)?;
    let mut block = [0u8; BLOCK];
    let (mut read, mut written, mut seen) = (0, 0, 0);
    while read < len {
        let n = (len - read).min(BLOCK);
        let out_len = decoded_len(n)?;
        let (Some(source), Some(input)) = (block.get_mut(..n), buf.get(read..read + n)) else {
            return Err(DecodeError::InvalidLength);
        };
        source.copy_from_slice(input);
        let out = buf
            .get_mut(written..written + out_len)
            .ok_or(DecodeError::InvalidLength)?;
        seen |= decode_block(source, out);
        read += n;
        written += out_len;
    }
    check(seen)?;
    Ok(total)
}

/// `text` without the padding a whole group may end in.
fn unpadded(mut text: &[u8]) -> &[u8] {
    if text.len().is_multiple_of(4) {
        for _ in 0..2 {
            if let Some((b'=', rest)) = text.split_last() {
                text = rest;
            }
        }
    }
    text
}

/// How many bytes `symbols` unpadded symbols decode to.
fn decoded_len(symbols: usize) -> Result<usize, DecodeError> {
    let extra = match symbols % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        _ => return Err(DecodeError::InvalidLength),
    };
    Ok(symbols / 4 * 3 + extra)
}

fn check(seen: u8) -> Result<(), DecodeError> {
    if seen > 63 {
        Err(DecodeError::InvalidByte)
    } else {
        Ok(())
    }
}

/// Decodes unpadded `input` into `out` (of [`decoded_len`]) and returns every symbol's value
/// ORed together: above 63 when a byte was not a symbol. Invalid bytes are collected in one
/// accumulator and checked once, keeping the loop branch-free.
fn decode_block(input: &[u8], out: &mut [u8]) -> u8 {
    let groups = input.chunks_exact(4);
    let tail = groups.remainder();
    let Some((body, last)) = out.split_at_mut_checked(input.len() / 4 * 3) else {
        return INVALID;
    };
    let mut seen = 0u8;
    for (o, i) in body.chunks_exact_mut(3).zip(groups) {
        if let ([o0, o1, o2], &[a, b, c, d]) = (o, i) {
            let (a, b, c, d) = (value(a), value(b), value(c), value(d));
            seen |= a | b | c | d;
            let n = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
            *o0 = (n >> 16) as u8;
            *o1 = (n >> 8) as u8;
            *o2 = n as u8;
        }
    }
    match (tail, last) {
        (&[a, b], [o0]) => {
            let (a, b) = (value(a), value(b));
            seen |= a | b;
            *o0 = a << 2 | b >> 4;
        }
        (&[a, b, c], [o0, o1]) => {
            let (a, b, c) = (value(a), value(b), value(c));
            seen |= a | b | c;
            *o0 = a << 2 | b >> 4;
            *o1 = b << 4 | c >> 2;
        }
        _ => {}
    }
    seen
}
