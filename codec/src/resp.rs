//! A reader for one Redis RESP2 reply, as webdis returns it with the `.raw` suffix.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Arrays nested deeper than this are an error, which bounds the reader's recursion.
pub const MAX_DEPTH: usize = 32;

/// Declared array lengths are trusted for preallocation only up to this; nested arrays each
/// claiming all remaining input would otherwise multiply what a hostile reply can allocate.
const MAX_PREALLOC: usize = 1024;

/// One RESP2 reply. Simple strings and errors are text (invalid UTF-8 is replaced); bulk strings
/// are binary-safe. `None` is the nil bulk string (`$-1`) or the nil array (`*-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// Why and where reading failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RespError {
    /// Byte offset into the input.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid RESP at byte {}: {}", self.offset, self.reason)
    }
}

impl core::error::Error for RespError {}

/// Reads exactly one reply; bytes after it are an error.
pub fn parse(bytes: &[u8]) -> Result<Reply, RespError> {
    parse_within(bytes, usize::MAX)
}

/// [`parse`], refusing a reply whose arrays hold more than `max_items` elements in all. A
/// reply is 32 bytes however short its text (`$0\r\n\r\n` is 6), so a caller that knows how
/// many elements its command can answer bounds the tree it holds, not only the input.
pub fn parse_within(bytes: &[u8], max_items: usize) -> Result<Reply, RespError> {
    let mut r = Reader {
        bytes,
        pos: 0,
        items_left: max_items,
    };
    let reply = r.reply(0)?;
    if r.pos != bytes.len() {
        return r.err("trailing bytes after the reply");
    }
    Ok(reply)
}

/// [`parse_within`], taking the input: a top-level bulk string (a `GET`'s value) becomes the
/// reply in the input's own buffer, so a large value is held once, not twice.
pub fn parse_owned(mut bytes: Vec<u8>, max_items: usize) -> Result<Reply, RespError> {
    if bytes.first() != Some(&b'$') {
        return parse_within(&bytes, max_items);
    }
    let mut r = Reader {
        bytes: &bytes,
        pos: 1,
        items_left: max_items,
    };
    let Some(len) = r.length()? else {
        return parse_within(&bytes, max_items);
    };
    let start = r.pos;
    let end = start.checked_add(len).ok_or(RespError {
        offset: start,
        reason: "invalid length",
    })?;
    if bytes.len() != end.saturating_add(2) || bytes.get(end..) != Some(b"\r\n") {
        // Not exactly one bulk string: the full reader says precisely what is wrong.
        return parse_within(&bytes, max_items);
    }
    bytes.truncate(end);
    bytes.drain(..start);
    Ok(Reply::Bulk(Some(bytes)))
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// How many more array elements the caller accepts.
    items_left: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, reason: &'static str) -> Result<T, RespError> {
        Err(RespError {
            offset: self.pos,
            reason,
        })
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    /// The bytes up to the next CRLF, which is consumed too.
    fn line(&mut self) -> Result<&'a [u8], RespError> {
        let rest = self.rest();
        let Some(cr) = rest.iter().position(|&b| b == b'\r') else {
            return self.err("missing CRLF");
        };
        if rest.get(cr + 1) != Some(&b'\n') {
            self.pos += cr;
            return self.err("missing CRLF");
        }
        self.pos += cr + 2;
        Ok(rest.get(..cr).unwrap_or_default())
    }

    fn integer(&mut self) -> Result<i64, RespError> {
        let at = self.pos;
        let line = self.line()?;
        core::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(RespError {
                offset: at,
                reason: "invalid integer",
            })
    }

    /// A bulk or array length; `None` for the nil form `-1`.
    fn length(&mut self) -> Result<Option<usize>, RespError> {
        let at = self.pos;
        match self.integer()? {
            -1 => Ok(None),
            n => usize::try_from(n).map(Some).map_err(|_| RespError {
                offset: at,
                reason: "invalid length",
            }),
        }
    }

    fn reply(&mut self, depth: usize) -> Result<Reply, RespError> {
        let Some(&kind) = self.bytes.get(self.pos) else {
            return self.err("truncated reply");
        };
        self.pos += 1;
        match kind {
            b'+' => Ok(Reply::Simple(text(self.line()?))),
            b'-' => Ok(Reply::Error(text(self.line()?))),
            b':' => Ok(Reply::Integer(self.integer()?)),
            b'$' => self.bulk(),
            b'*' => self.array(depth),
            _ => {
                self.pos -= 1;
                self.err("unknown reply type")
            }
        }
    }

    fn bulk(&mut self) -> Result<Reply, RespError> {
        let Some(len) = self.length()? else {
            return Ok(Reply::Bulk(None));
        };
        // Checking the declared length against the input before copying keeps a hostile length
        // from allocating anything.
        let Some(data) = self.rest().get(..len) else {
            return self.err("bulk string longer than the input");
        };
        self.pos += len;
        if self.rest().get(..2) != Some(b"\r\n") {
            return self.err("missing CRLF after bulk string");
        }
        self.pos += 2;
        Ok(Reply::Bulk(Some(data.to_vec())))
    }

    fn array(&mut self, depth: usize) -> Result<Reply, RespError> {
        let Some(len) = self.length()? else {
            return Ok(Reply::Array(None));
        };
        if depth >= MAX_DEPTH {
            return self.err("nesting too deep");
        }
        // The shortest reply, "+\r\n", takes three bytes.
        if len > self.rest().len() / 3 {
            return self.err("array longer than the input");
        }
        let Some(left) = self.items_left.checked_sub(len) else {
            return self.err("more array elements than this answer can hold");
        };
        self.items_left = left;
        let mut items = Vec::with_capacity(len.min(MAX_PREALLOC));
        for _ in 0..len {
            items.push(self.reply(depth + 1)?);
        }
        Ok(Reply::Array(Some(items)))
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}
