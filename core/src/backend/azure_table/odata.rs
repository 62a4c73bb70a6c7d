//! The JSON bodies of the Table service (OData, `nometadata`): the entity a write sends, and
//! the readers of an entity and of a query page.
//!
//! Besides the value, an entity may hold the extension's metadata, property `m`
//! (`Edm.Binary`), and its deadline, property `x` (`Edm.Int64`, milliseconds since the Unix
//! epoch; OData's JSON writes 64-bit integers as decimal strings). Entities written before
//! the extension have neither: no metadata, no expiry.
//!
//! Fuzzed: [`read_entity`], [`read_entry`], [`read_deadline`] and [`read_query`] take any
//! bytes.
//!
//! Answers are read into derived structs, so a field twice is serde_json's `duplicate field`
//! error; the entity, whose value properties are numbered, follows the same rule for
//! `RowKey` and `v0`, `v1`, ….

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use kvplug_codec::base64;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};

use super::keys::{MAX_VALUE, PART_BYTES, parts};
pub use crate::backend::json::describe;
use crate::backend::json::{Base64, Text};
use crate::error::Error;

/// The most parts a value kvplug wrote can have (12: `v0` to `v11`). A reader reserves a
/// slot up to the highest part an entity names, so it takes no higher one: with the 255 an
/// entity could hold, a 12-byte hostile entity naming `v254` cost a 6 KB slot array (found
/// by the azure_table fuzz target, fuzz/regressions/azure_table).
const MAX_PARTS: usize = MAX_VALUE.div_ceil(PART_BYTES);

/// The property that holds an entity's metadata (`Edm.Binary`), absent when it has none.
pub const METADATA: &str = "m";
/// The property that holds an entity's deadline (`Edm.Int64`, milliseconds since the Unix
/// epoch), absent when it never expires.
pub const DEADLINE: &str = "x";

/// The entity of a write: the keys, the value as binary properties `v0`, `v1`, …, and the
/// metadata (`m`, left out when empty) and the deadline (`x`, left out when `None`).
pub struct Entity<'a> {
    pub partition: &'a str,
    pub row: &'a str,
    pub value: &'a [u8],
    pub metadata: &'a [u8],
    pub expires_ms: Option<u64>,
}

impl Serialize for Entity<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("PartitionKey", self.partition)?;
        map.serialize_entry("RowKey", self.row)?;
        for (i, part) in parts(self.value).enumerate() {
            map.serialize_entry(&format_args!("v{i}@odata.type"), "Edm.Binary")?;
            map.serialize_entry(&format_args!("v{i}"), &Base64(part))?;
        }
        if !self.metadata.is_empty() {
            map.serialize_entry(&format_args!("{METADATA}@odata.type"), "Edm.Binary")?;
            map.serialize_entry(METADATA, &Base64(self.metadata))?;
        }
        if let Some(deadline) = self.expires_ms {
            // An `Edm.Int64` is signed; no deadline this adapter computes comes near the end.
            let deadline = deadline.min(i64::MAX as u64);
            map.serialize_entry(&format_args!("{DEADLINE}@odata.type"), "Edm.Int64")?;
            map.serialize_entry(DEADLINE, &format_args!("{deadline}"))?;
        }
        map.end()
    }
}

/// The body of a write of `entity`.
pub fn entity_json(entity: &Entity<'_>) -> Result<String, Error> {
    serde_json::to_string(entity)
        .map_err(|e| Error::Invalid(format!("azure-table: cannot write the entity: {e}")))
}

/// An entity as answers carry it: its `RowKey`, its value's parts, its metadata and its
/// deadline, each as given.
#[derive(Debug)]
pub struct EntityAnswer<'a> {
    row_key: Json<'a, Ignored>,
    /// Part `i` at index `i`; `Absent` where the entity has none.
    parts: Vec<Json<'a, Ignored>>,
    metadata: Json<'a, Ignored>,
    /// `None` until the entity names `x`.
    deadline: Option<Deadline>,
}

/// `x` as an answer gives it. `null` (what a `$select` of a property the entity lacks may
/// give) is no deadline, as an absent `x` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    Never,
    At(u64),
    /// A string that is not a decimal integer.
    Malformed,
}

impl<'de> Deserialize<'de> for Deadline {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Int64;
        impl Visitor<'_> for Int64 {
            type Value = Deadline;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an Edm.Int64 (a decimal string) or null")
            }
            fn visit_str<E>(self, text: &str) -> Result<Deadline, E> {
                // A deadline before the epoch has passed: it reads as the epoch.
                Ok(match text.parse::<i64>() {
                    Ok(ms) => Deadline::At(u64::try_from(ms).unwrap_or(0)),
                    Err(_) => Deadline::Malformed,
                })
            }
            fn visit_u64<E>(self, ms: u64) -> Result<Deadline, E> {
                Ok(Deadline::At(ms))
            }
            fn visit_i64<E>(self, ms: i64) -> Result<Deadline, E> {
                Ok(Deadline::At(u64::try_from(ms).unwrap_or(0)))
            }
            fn visit_unit<E>(self) -> Result<Deadline, E> {
                Ok(Deadline::Never)
            }
            fn visit_none<E>(self) -> Result<Deadline, E> {
                Ok(Deadline::Never)
            }
        }
        deserializer.deserialize_any(Int64)
    }
}

impl EntityAnswer<'_> {
    pub fn row_key(&self) -> Result<&str, &'static str> {
        self.row_key.as_str().ok_or("an entity without `RowKey`")
    }

    /// The deadline (`x`), milliseconds since the Unix epoch; `None` when the entity never
    /// expires.
    pub fn expires_ms(&self) -> Result<Option<u64>, &'static str> {
        match self.deadline {
            None | Some(Deadline::Never) => Ok(None),
            Some(Deadline::At(ms)) => Ok(Some(ms)),
            Some(Deadline::Malformed) => Err("a deadline `x` that is not a decimal Int64"),
        }
    }

    /// Whether the entity is live at `now_ms`.
    pub fn live_at(&self, now_ms: u64) -> Result<bool, &'static str> {
        Ok(!kvplug_protocol::entries::is_expired(
            self.expires_ms()?,
            now_ms,
        ))
    }

    /// The metadata (`m`); empty when the entity has none.
    pub fn metadata(&self) -> Result<Vec<u8>, &'static str> {
        match &self.metadata {
            Json::Absent => Ok(Vec::new()),
            Json::Text(text) => base64::decode(text).map_err(|_| "metadata `m` that is not base64"),
            _ => Err("metadata `m` that is not a string"),
        }
    }

    /// The value: the parts `v0`, `v1`, … joined, up to the first one missing.
    pub fn value(&self) -> Result<Vec<u8>, &'static str> {
        let mut value = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            let text = match part {
                Json::Absent if i == 0 => {
                    return Err("an entity without `v0` (not written by kvplug)");
                }
                Json::Absent => break,
                Json::Text(text) => text,
                _ => return Err("a value part that is not a string"),
            };
            let bytes = base64::decode(text).map_err(|_| "a value part that is not base64")?;
            value.extend_from_slice(&bytes);
        }
        if self.parts.is_empty() {
            return Err("an entity without `v0` (not written by kvplug)");
        }
        Ok(value)
    }
}

/// The index of value part `name` (`v0` to `v11`, spelled as `value_of` always asked).
fn part_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix('v')?;
    let canonical = digits == "0" || !digits.starts_with('0');
    if !canonical || digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|i| *i < MAX_PARTS)
}

impl<'de: 'a, 'a> Deserialize<'de> for EntityAnswer<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Properties;
        impl<'de> Visitor<'de> for Properties {
            type Value = EntityAnswer<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an entity")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                use serde::de::Error as _;
                let mut entity = EntityAnswer {
                    row_key: Json::Absent,
                    parts: Vec::new(),
                    metadata: Json::Absent,
                    deadline: None,
                };
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    if name == DEADLINE {
                        if entity.deadline.is_some() {
                            return Err(A::Error::custom(format_args!("duplicate field `{name}`")));
                        }
                        entity.deadline = Some(map.next_value()?);
                        continue;
                    }
                    let slot = if name == "RowKey" {
                        &mut entity.row_key
                    } else if name == METADATA {
                        &mut entity.metadata
                    } else if let Some(i) = part_index(&name) {
                        if entity.parts.len() <= i {
                            entity.parts.resize_with(i + 1, || Json::Absent);
                        }
                        match entity.parts.get_mut(i) {
                            Some(slot) => slot,
                            None => return Err(A::Error::custom("a value part out of range")),
                        }
                    } else {
                        map.next_value::<IgnoredAny>()?;
                        continue;
                    };
                    if !matches!(slot, Json::Absent) {
                        return Err(A::Error::custom(format_args!("duplicate field `{name}`")));
                    }
                    *slot = map.next_value()?;
                }
                Ok(entity)
            }
        }
        deserializer.deserialize_map(Properties)
    }
}

#[derive(Debug, Deserialize)]
struct QueryAnswer<'a> {
    #[serde(borrow)]
    value: Option<Vec<EntityAnswer<'a>>>,
}

/// Reads one entity (a `GET` of its URL): its value.
pub fn read_entity(body: &[u8]) -> Result<Vec<u8>, String> {
    Ok(parse::<EntityAnswer<'_>>(body)?.value()?)
}

/// One entity as the extension reads it: value, metadata and deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityBody {
    pub value: Vec<u8>,
    /// Empty when the entity has none.
    pub metadata: Vec<u8>,
    /// Milliseconds since the Unix epoch; `None`: never expires.
    pub expires_ms: Option<u64>,
}

/// Reads one entity (a `GET` of its URL): its value, metadata and deadline.
pub fn read_entry(body: &[u8]) -> Result<EntityBody, String> {
    let entity = parse::<EntityAnswer<'_>>(body)?;
    Ok(EntityBody {
        value: entity.value()?,
        metadata: entity.metadata()?,
        expires_ms: entity.expires_ms()?,
    })
}

/// Reads the deadline of one entity fetched with `$select=x` (no value is asked for, so
/// none is required).
pub fn read_deadline(body: &[u8]) -> Result<Option<u64>, String> {
    Ok(parse::<EntityAnswer<'_>>(body)?.expires_ms()?)
}

/// Reads a page of a query: its entities.
pub fn read_query(body: &[u8]) -> Result<Vec<EntityAnswer<'_>>, String> {
    match parse::<Json<'_, QueryAnswer<'_>>>(body)? {
        Json::Object(QueryAnswer { value: Some(list) }) => Ok(list),
        _ => Err(String::from("a query answer without a `value` list")),
    }
}

/// Parses a JSON body; the error says what was wrong, without quoting the body.
pub fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, String> {
    let text = core::str::from_utf8(body)
        .map_err(|e| format!("a response that is not UTF-8 (at byte {})", e.valid_up_to()))?;
    serde_json::from_str(text).map_err(|e| describe(&e))
}

/// An object of which no field is read.
#[derive(Debug, Deserialize)]
pub struct Ignored {}

/// A JSON value read leniently: an object read as `T`, a string, anything else, or absent
/// (`Default`, for a field not given). A reader treats the shape it does not want as it
/// would an absent field.
#[derive(Debug, Default)]
pub enum Json<'a, T> {
    #[default]
    Absent,
    Object(T),
    Text(Cow<'a, str>),
    Other,
}

impl<T> Json<'_, T> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Text(text) => Some(text),
            _ => None,
        }
    }
}

impl<'de: 'a, 'a, T: Deserialize<'de>> Deserialize<'de> for Json<'a, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Anything<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Anything<T> {
            type Value = Json<'de, T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Json::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Json::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Json::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Json::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Json::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Json::Other)
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Json::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Json::Text(Cow::Owned(String::from(s))))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Json::Other)
            }
        }
        deserializer.deserialize_any(Anything(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_join_their_parts_up_to_the_first_missing() {
        assert_eq!(read_entity(br#"{"v0":"aGk="}"#), Ok(b"hi".to_vec()));
        assert_eq!(
            read_entity(br#"{"v1":"IQ==","RowKey":"k","v0":"aGk=","v0@odata.type":"Edm.Binary"}"#),
            Ok(b"hi!".to_vec())
        );
        // A gap ends the value: what follows it is not read.
        assert_eq!(read_entity(br#"{"v0":"aGk=","v2":7}"#), Ok(b"hi".to_vec()));
        // Only the spelling the writer uses counts: `v00` and `v255` are other properties.
        assert_eq!(
            read_entity(br#"{"v0":"","v01":"aGk=","v255":"aGk="}"#),
            Ok(Vec::new())
        );
        for (body, detail) in [
            (
                &br#"{"v1":"aGk="}"#[..],
                "an entity without `v0` (not written by kvplug)",
            ),
            (br#"{}"#, "an entity without `v0` (not written by kvplug)"),
            (br#"{"v0":null}"#, "a value part that is not a string"),
            (
                br#"{"v0":"aGk=","v1":{}}"#,
                "a value part that is not a string",
            ),
            (br#"{"v0":"***"}"#, "a value part that is not base64"),
        ] {
            assert_eq!(read_entity(body), Err(String::from(detail)));
        }
        assert!(read_entity(b"[]").is_err());
        assert!(
            read_entity(b"{\"v0\":\"\xff\"}")
                .unwrap_err()
                .contains("not UTF-8")
        );
    }

    #[test]
    fn entries_read_metadata_and_deadline_beside_the_value() {
        // Written before the extension: no metadata, no deadline.
        assert_eq!(
            read_entry(br#"{"RowKey":"k","v0":"aGk=","Timestamp":"2026-12-03T17:56:18Z"}"#),
            Ok(EntityBody {
                value: b"hi".to_vec(),
                metadata: Vec::new(),
                expires_ms: None,
            })
        );
        // As Azurite answers: the Int64 a decimal string, no type annotations.
        assert_eq!(
            read_entry(br#"{"v0":"aGk=","x":"1700000000000","m":"bWV0YQ=="}"#),
            Ok(EntityBody {
                value: b"hi".to_vec(),
                metadata: b"meta".to_vec(),
                expires_ms: Some(1_700_000_000_000),
            })
        );
        // A number, or `null` (a `$select` of a property the entity lacks), read leniently;
        // a deadline before the epoch has passed.
        for (body, deadline) in [
            (&br#"{"v0":"","x":17}"#[..], Some(17)),
            (br#"{"v0":"","x":null}"#, None),
            (br#"{"v0":"","x":"-5"}"#, Some(0)),
            (br#"{"v0":"","x":-5}"#, Some(0)),
        ] {
            assert_eq!(read_entry(body).map(|e| e.expires_ms), Ok(deadline));
        }
        for (body, detail) in [
            (
                &br#"{"v0":"","x":"soon"}"#[..],
                "a deadline `x` that is not a decimal Int64",
            ),
            (
                br#"{"v0":"","x":"18446744073709551616"}"#,
                "a deadline `x` that is not a decimal Int64",
            ),
            (br#"{"v0":"","m":"***"}"#, "metadata `m` that is not base64"),
            (br#"{"v0":"","m":7}"#, "metadata `m` that is not a string"),
        ] {
            assert_eq!(read_entry(body), Err(String::from(detail)));
        }
        assert!(read_entry(br#"{"v0":"","x":[1]}"#).is_err());
        for (body, field) in [
            (&br#"{"v0":"","x":"1","x":"2"}"#[..], "x"),
            (br#"{"v0":"","m":"","m":""}"#, "m"),
        ] {
            let detail = read_entry(body).unwrap_err();
            assert!(
                detail.starts_with(&format!("duplicate field `{field}`")),
                "{detail}"
            );
        }
    }

    #[test]
    fn a_selected_deadline_needs_no_value() {
        assert_eq!(
            read_deadline(br#"{"x":"1700000000000"}"#),
            Ok(Some(1_700_000_000_000))
        );
        assert_eq!(read_deadline(b"{}"), Ok(None));
        assert_eq!(read_deadline(br#"{"x":null}"#), Ok(None));
        assert!(read_deadline(br#"{"x":"later"}"#).is_err());
        assert!(read_deadline(b"[]").is_err());
    }

    #[test]
    fn entities_write_metadata_and_deadline_only_when_there_are() {
        let entity = |metadata: &'static [u8], expires_ms| {
            entity_json(&Entity {
                partition: "!b",
                row: "k",
                value: b"hi",
                metadata,
                expires_ms,
            })
            .unwrap()
        };
        let plain =
            r#"{"PartitionKey":"!b","RowKey":"k","v0@odata.type":"Edm.Binary","v0":"aGk="}"#;
        assert_eq!(entity(b"", None), plain);
        let full = entity(b"meta", Some(1_700_000_000_000));
        assert_eq!(
            full,
            r#"{"PartitionKey":"!b","RowKey":"k","v0@odata.type":"Edm.Binary","v0":"aGk=","m@odata.type":"Edm.Binary","m":"bWV0YQ==","x@odata.type":"Edm.Int64","x":"1700000000000"}"#
        );
        assert_eq!(
            read_entry(full.as_bytes()),
            Ok(EntityBody {
                value: b"hi".to_vec(),
                metadata: b"meta".to_vec(),
                expires_ms: Some(1_700_000_000_000),
            })
        );
        // An Int64 holds no more than its maximum.
        assert!(entity(b"", Some(u64::MAX)).ends_with(r#""x":"9223372036854775807"}"#));
    }

    #[test]
    fn query_pages_list_their_entities() {
        let page = read_query(br#"{"value":[{"RowKey":"a","v0":"YQ=="},{"RowKey":7}]}"#).unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page.first().map(EntityAnswer::row_key), Some(Ok("a")));
        assert_eq!(
            page.first().map(EntityAnswer::value),
            Some(Ok(b"a".to_vec()))
        );
        assert_eq!(
            page.get(1).map(EntityAnswer::row_key),
            Some(Err("an entity without `RowKey`"))
        );
        // `$select=RowKey,x`: the deadline where there is one, no value asked for.
        let page = read_query(br#"{"value":[{"RowKey":"a","x":"1700000000000"},{"RowKey":"b"}]}"#)
            .unwrap();
        let deadlines: Vec<_> = page.iter().map(EntityAnswer::expires_ms).collect();
        assert_eq!(deadlines, [Ok(Some(1_700_000_000_000)), Ok(None)]);
        let live: Vec<_> = page.iter().map(|e| e.live_at(1_700_000_000_000)).collect();
        assert_eq!(live, [Ok(false), Ok(true)]);
        assert_eq!(
            page.first().map(|e| e.live_at(1_699_999_999_999)),
            Some(Ok(true))
        );
        for body in [&br#"{}"#[..], br#"{"value":null}"#, b"[]", b"\"value\""] {
            assert_eq!(
                read_query(body).map(drop),
                Err(String::from("a query answer without a `value` list"))
            );
        }
        let detail = read_query(br#"{"value":"secret text"}"#).unwrap_err();
        assert!(!detail.contains("secret"), "{detail}");
    }

    #[test]
    fn a_field_twice_is_refused() {
        for (body, field) in [
            (&br#"{"value":[],"value":[]}"#[..], "value"),
            (br#"{"value":[{"RowKey":"a","RowKey":"b"}]}"#, "RowKey"),
            (br#"{"value":[{"v0":"","v1":"","v0":""}]}"#, "v0"),
        ] {
            let detail = read_query(body).unwrap_err();
            assert!(
                detail.starts_with(&format!("duplicate field `{field}` at line 1 column ")),
                "{detail}"
            );
        }
        let detail = read_entity(br#"{"v0":"aGk=","v0":"aGk="}"#).unwrap_err();
        assert!(detail.starts_with("duplicate field `v0`"), "{detail}");
    }
}
