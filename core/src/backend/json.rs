//! What the JSON backends (etcd, DynamoDB, Azure Table) share in writing and reading bodies
//! with serde: values as base64 written straight into the body, strings borrowed from the
//! answer, request bodies, and serde_json's messages without the text they quote.

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use kvplug_codec::base64;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Error;

/// Bytes written as a base64 JSON string, encoded straight into the body (values reach
/// megabytes: no intermediate string of the whole value).
#[derive(Debug)]
pub struct Base64<'a>(pub &'a [u8]);

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Display for Base64<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole groups of 3 bytes encode to the same text apart as together.
        let mut text = String::new();
        for chunk in self.0.chunks(3 * 1024) {
            text.clear();
            base64::encode_into(&mut text, chunk);
            f.write_str(&text)?;
        }
        Ok(())
    }
}

/// A value sent as a base64 string in a JSON answer.
#[derive(Debug)]
pub enum Found {
    /// Verbatim in the answer at this range: decoded there, so the value is held once (as
    /// its answer), never beside it.
    At(Range<usize>),
    /// The JSON escaped some of it (`\/`), so serde copied it out: decoded from that copy.
    Copied(Vec<u8>),
}

impl Found {
    /// Finds `text`, a string serde read from `body`.
    pub fn of(body: &[u8], text: &str) -> Result<Found, base64::DecodeError> {
        // Borrowed text points into the body; its offset is plain address arithmetic.
        let start = (text.as_ptr() as usize).wrapping_sub(body.as_ptr() as usize);
        let range = start..start.wrapping_add(text.len());
        match body.get(range.clone()) {
            Some(there) if there.as_ptr() == text.as_ptr() => Ok(Found::At(range)),
            _ => base64::decode(text).map(Found::Copied),
        }
    }

    /// The value's bytes, taking `body` (the answer it was found in) as their buffer.
    pub fn take(self, mut body: Vec<u8>) -> Result<Vec<u8>, base64::DecodeError> {
        match self {
            Found::Copied(value) => Ok(value),
            Found::At(range) => {
                let start = range.start;
                let text = body
                    .get_mut(range)
                    .ok_or(base64::DecodeError::InvalidLength)?;
                let len = base64::decode_in_place(text)?;
                body.drain(..start);
                body.truncate(len);
                Ok(body)
            }
        }
    }
}

/// A JSON string: borrowed from the answer unless it had escapes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Strings;
        impl<'de> Visitor<'de> for Strings {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(s))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(String::from(s)))
            }
        }
        deserializer.deserialize_str(Strings).map(Text)
    }
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Not of the service's answer shape at all (not a JSON object, or without the object
    /// the service always sends): another server answered.
    Foreign,
    /// The service's answer, but not of the shape the operation needs (a field twice, of the
    /// wrong type, a value that is not base64, …).
    Malformed(String),
}

impl From<&str> for Unreadable {
    fn from(detail: &str) -> Self {
        Unreadable::Malformed(String::from(detail))
    }
}

/// The body of a request to `backend`.
pub fn to_json(backend: &str, body: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(body)
        .map_err(|e| Error::Invalid(format!("{backend}: cannot write the request: {e}")))
}

/// serde_json's message without the text it quotes from the answer (`invalid type: string
/// "…"`), which may be large or echo a secret; the position stays.
pub fn describe(error: &serde_json::Error) -> String {
    let message = error.to_string();
    match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            let head = message.get(..first).unwrap_or_default().trim_end();
            let tail = message.get(last + 1..).unwrap_or_default();
            format!("{head}{tail}")
        }
        _ => message,
    }
}

/// Any JSON value, kept only as far as a lenient read needs it: a field read this way counts
/// as absent when it has the wrong type, as the services' own clients would have it.
#[derive(Debug, Default)]
pub enum Loose<'a> {
    /// Not in the answer (for a field with `#[serde(default)]`).
    #[default]
    Absent,
    Object,
    Bool(bool),
    Unsigned(u64),
    Text(Cow<'a, str>),
    Other,
}

impl Loose<'_> {
    pub fn is_object(&self) -> bool {
        matches!(self, Loose::Object)
    }

    pub fn is_true(&self) -> bool {
        matches!(self, Loose::Bool(true))
    }

    /// A number, or a string holding a decimal (the gateway sends int64 fields as strings):
    /// what `u64`'s `FromStr` takes.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Loose::Unsigned(n) => Some(*n),
            Loose::Text(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Loose::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Anything;
        impl<'de> Visitor<'de> for Anything {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
                Ok(Loose::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(n).map_or(Loose::Other, Loose::Unsigned))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
                Ok(Loose::Unsigned(n))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Loose::Text(Cow::Owned(String::from(s))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
        }
        deserializer.deserialize_any(Anything)
    }
}
