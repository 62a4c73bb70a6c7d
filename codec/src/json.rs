//! A small JSON (RFC 8259) reader into a tree that borrows the source text, and a string writer.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Deref;

/// Arrays and objects nested deeper than this are an error, which bounds the parser's recursion.
pub const MAX_DEPTH: usize = 128;

/// A decoded JSON string: borrows the source text when it had no escapes, owns the decoded text
/// when it had. Dereferences to `str`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Str<'a>(Cow<'a, str>);

impl<'a> Str<'a> {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this borrows the source text (the string had no escapes).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.0, Cow::Borrowed(_))
    }

    pub fn into_cow(self) -> Cow<'a, str> {
        self.0
    }
}

impl Deref for Str<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A parsed JSON value. Numbers keep their source text, so callers choose how to read them.
/// Objects keep their members in document order, duplicates included.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(Str<'a>),
    Array(Vec<Value<'a>>),
    Object(Vec<(Str<'a>, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// The value of the first member named `key`, if this is an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(Str<'a>, Value<'a>)]> {
        match self {
            Self::Object(members) => Some(members),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A number or a string holding a decimal integer (etcd sends int64 fields as strings).
    pub fn as_i64(&self) -> Option<i64> {
        self.integer_text()?.parse().ok()
    }

    /// A number or a string holding a decimal integer (etcd sends uint64 fields as strings).
    pub fn as_u64(&self) -> Option<u64> {
        self.integer_text()?.parse().ok()
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    fn integer_text(&self) -> Option<&str> {
        match self {
            Self::Number(n) => Some(n),
            Self::String(s) => Some(s.as_str()),
            _ => None,
        }
    }
}

/// Why and where parsing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the input.
    pub offset: usize,
    pub reason: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.reason)
    }
}

impl core::error::Error for ParseError {}

/// Parses one complete JSON document; anything but whitespace after it is an error.
pub fn parse(text: &str) -> Result<Value<'_>, ParseError> {
    let mut p = Parser { text, pos: 0 };
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != text.len() {
        return p.err("trailing characters after the document");
    }
    Ok(value)
}

/// Like [`parse`], for input that is not yet known to be UTF-8.
pub fn parse_bytes(bytes: &[u8]) -> Result<Value<'_>, ParseError> {
    let text = core::str::from_utf8(bytes).map_err(|e| ParseError {
        offset: e.valid_up_to(),
        reason: "invalid UTF-8",
    })?;
    parse(text)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, reason: &'static str) -> Result<T, ParseError> {
        Err(ParseError {
            offset: self.pos,
            reason,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn slice(&self, start: usize, end: usize) -> Result<&'a str, ParseError> {
        match self.text.get(start..end) {
            Some(s) => Ok(s),
            None => self.err("internal error: not a character boundary"),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("expected a value"),
            None => self.err("unexpected end of input"),
        }
    }

    fn literal(&mut self, word: &str, value: Value<'a>) -> Result<Value<'a>, ParseError> {
        let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
        if !rest.starts_with(word.as_bytes()) {
            return self.err("invalid literal");
        }
        self.pos += word.len();
        Ok(value)
    }

    fn enter(&self, depth: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return self.err("nesting too deep");
        }
        Ok(depth + 1)
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            if !self.eat(b',') {
                return self.err("expected ',' or ']'");
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        let depth = self.enter(depth)?;
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_ws();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return self.err("expected a string key");
            }
            let key = self.string()?;
            self.skip_ws();
            if !self.eat(b':') {
                return self.err("expected ':'");
            }
            members.push((key, self.value(depth)?));
            self.skip_ws();
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            if !self.eat(b',') {
                return self.err("expected ',' or '}'");
            }
        }
    }

    fn digits(&mut self) -> bool {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos > start
    }

    fn number(&mut self) -> Result<Value<'a>, ParseError> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("expected a digit"),
        }
        if self.eat(b'.') && !self.digits() {
            return self.err("expected a digit");
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.digits() {
                return self.err("expected a digit");
            }
        }
        self.slice(start, self.pos).map(Value::Number)
    }

    /// Reads a string whose opening quote is at the current position.
    fn string(&mut self) -> Result<Str<'a>, ParseError> {
        self.pos += 1;
        let mut decoded: Option<String> = None;
        loop {
            let rest = self.text.as_bytes().get(self.pos..).unwrap_or_default();
            let end = self.pos + special(rest);
            // `end` is at an ASCII byte or the end of the text, so always a character boundary.
            let run = self.slice(self.pos, end)?;
            self.pos = end;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Str(match decoded {
                        None => Cow::Borrowed(run),
                        Some(mut s) => {
                            s.push_str(run);
                            Cow::Owned(s)
                        }
                    }));
                }
                Some(b'\\') => {
                    let s = decoded.get_or_insert_with(String::new);
                    s.push_str(run);
                    self.pos += 1;
                    let c = self.escape()?;
                    s.push(c);
                }
                Some(_) => return self.err("control character in string"),
                None => return self.err("unterminated string"),
            }
        }
    }

    /// Reads the escape after a backslash.
    fn escape(&mut self) -> Result<char, ParseError> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            Some(_) => return self.err("invalid escape"),
            None => return self.err("unterminated string"),
        };
        self.pos += 1;
        Ok(c)
    }

    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let at = self.pos;
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !(self.eat(b'\\') && self.eat(b'u')) {
                    return self.err("unpaired surrogate");
                }
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return self.err("unpaired surrogate");
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return self.err("unpaired surrogate"),
            _ => high,
        };
        char::from_u32(code).ok_or(ParseError {
            offset: at,
            reason: "invalid \\u escape",
        })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .as_bytes()
            .get(self.pos..)
            .and_then(|rest| rest.get(..4))
            .unwrap_or_default();
        let mut code = 0;
        for &d in digits {
            match char::from(d).to_digit(16) {
                Some(v) => code = code << 4 | v,
                None => return self.err("invalid \\u escape"),
            }
        }
        if digits.len() != 4 {
            return self.err("invalid \\u escape");
        }
        self.pos += 4;
        Ok(code)
    }
}

/// The index of the first byte that ends a plain run inside a JSON string (`"`, `\` or a control
/// character), or `bytes.len()`. Multi-megabyte values make this the hot loop, so it tests eight
/// bytes at a time with the classic SWAR zero-byte and less-than tricks, both exact per word.
fn special(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASHES: u64 = u64::from_ne_bytes([b'\\'; 8]);
    const SPACES: u64 = u64::from_ne_bytes([0x20; 8]);

    let mut clean = 0;
    for word in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_ne_bytes(word);
        let q = x ^ QUOTES;
        let b = x ^ BACKSLASHES;
        let hits = (q.wrapping_sub(ONES) & !q)
            | (b.wrapping_sub(ONES) & !b)
            | (x.wrapping_sub(SPACES) & !x);
        if hits & HIGHS != 0 {
            break;
        }
        clean += 8;
    }
    let rest = bytes.get(clean..).unwrap_or_default();
    match rest
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
    {
        Some(i) => clean + i,
        None => bytes.len(),
    }
}

/// Appends `s` to `out` as a quoted JSON string. Quotes, backslashes and control characters are
/// escaped, the short forms where JSON has them; everything else is copied as is.
pub fn write_str(out: &mut String, s: &str) {
    out.reserve(s.len().saturating_add(2));
    out.push('"');
    let mut rest = s;
    loop {
        let i = special(rest.as_bytes());
        let Some((run, tail)) = rest.split_at_checked(i) else {
            break;
        };
        out.push_str(run);
        let Some(&b) = tail.as_bytes().first() else {
            break;
        };
        push_escape(out, b);
        rest = tail.get(1..).unwrap_or_default();
    }
    out.push('"');
}

fn push_escape(out: &mut String, b: u8) {
    let short = match b {
        b'"' => '"',
        b'\\' => '\\',
        b'\n' => 'n',
        b'\r' => 'r',
        b'\t' => 't',
        0x08 => 'b',
        0x0C => 'f',
        _ => {
            out.push_str("\\u00");
            for nibble in [b >> 4, b & 0xF] {
                out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
            return;
        }
    };
    out.push('\\');
    out.push(short);
}
