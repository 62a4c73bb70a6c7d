//! Binary-safe framing for batch and list bodies (media type `application/vnd.kvplug.frames`).
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. An optional frame is a
//! tag byte, `0` (absent) or `1` (present, followed by a frame). Keys and values are carried
//! raw: no escaping, no base64, any byte allowed.

use alloc::vec::Vec;
use core::fmt;

/// Why a body is not well-formed frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The body ends inside a length, tag or frame.
    Truncated,
    /// A tag byte other than 0 or 1.
    BadTag(u8),
    /// A frame longer than a 32-bit length can say.
    TooLong,
    /// A key frame that is not UTF-8.
    NotUtf8,
    /// A frame that must hold a decimal number (a change's position) does not.
    NotANumber,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::Truncated => f.write_str("body ends inside a frame"),
            FrameError::BadTag(tag) => write!(f, "optional-frame tag {tag} is neither 0 nor 1"),
            FrameError::TooLong => f.write_str("frame longer than 4 GiB"),
            FrameError::NotUtf8 => f.write_str("key frame is not UTF-8"),
            FrameError::NotANumber => f.write_str("number frame is not a decimal number"),
        }
    }
}

/// Appends one frame.
pub fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), FrameError> {
    let len = u32::try_from(bytes.len()).map_err(|_| FrameError::TooLong)?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Appends one optional frame.
pub fn put_optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) -> Result<(), FrameError> {
    match bytes {
        None => {
            out.push(0);
            Ok(())
        }
        Some(bytes) => {
            out.push(1);
            put(out, bytes)
        }
    }
}

/// Reads frames off a body, front to back, without copying.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over a whole body.
    pub fn new(body: &'a [u8]) -> Self {
        Reader { rest: body }
    }

    /// Whether the whole body has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next frame.
    pub fn frame(&mut self) -> Result<&'a [u8], FrameError> {
        let (len, rest) = self
            .rest
            .split_first_chunk::<4>()
            .ok_or(FrameError::Truncated)?;
        let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| FrameError::TooLong)?;
        let (frame, rest) = rest.split_at_checked(len).ok_or(FrameError::Truncated)?;
        self.rest = rest;
        Ok(frame)
    }

    /// The next frame, as a UTF-8 key.
    pub fn key(&mut self) -> Result<&'a str, FrameError> {
        core::str::from_utf8(self.frame()?).map_err(|_| FrameError::NotUtf8)
    }

    /// The next optional frame.
    pub fn optional(&mut self) -> Result<Option<&'a [u8]>, FrameError> {
        let (&tag, rest) = self.rest.split_first().ok_or(FrameError::Truncated)?;
        self.rest = rest;
        match tag {
            0 => Ok(None),
            1 => self.frame().map(Some),
            other => Err(FrameError::BadTag(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_binary_and_empty() {
        let mut body = Vec::new();
        put(&mut body, b"").unwrap();
        put(&mut body, &[0, 255, 10, 13]).unwrap();
        put_optional(&mut body, None).unwrap();
        put_optional(&mut body, Some(b"v")).unwrap();
        put(&mut body, "ключ".as_bytes()).unwrap();
        let mut reader = Reader::new(&body);
        assert_eq!(reader.frame(), Ok(&b""[..]));
        assert_eq!(reader.frame(), Ok(&[0, 255, 10, 13][..]));
        assert_eq!(reader.optional(), Ok(None));
        assert_eq!(reader.optional(), Ok(Some(&b"v"[..])));
        assert_eq!(reader.key(), Ok("ключ"));
        assert!(reader.is_empty());
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        assert_eq!(Reader::new(&[0, 0]).frame(), Err(FrameError::Truncated));
        assert_eq!(
            Reader::new(&[0, 0, 0, 5, 1]).frame(),
            Err(FrameError::Truncated)
        );
        assert_eq!(Reader::new(&[7]).optional(), Err(FrameError::BadTag(7)));
        assert_eq!(Reader::new(&[]).optional(), Err(FrameError::Truncated));
        assert_eq!(
            Reader::new(&[0, 0, 0, 1, 0xff]).key(),
            Err(FrameError::NotUtf8)
        );
    }
}
