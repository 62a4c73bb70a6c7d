//! The JSON bodies of the Table service (OData, `nometadata`): the entity a write sends, and
//! the readers of an entity and of a query page.
//!
//! Fuzzed: [`read_entity`] and [`read_query`] take any bytes.
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

/// The entity of a write: the keys, and the value as binary properties `v0`, `v1`, …
pub struct Entity<'a> {
    pub partition: &'a str,
    pub row: &'a str,
    pub value: &'a [u8],
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
        map.end()
    }
}

/// The body of a write of `entity`.
pub fn entity_json(entity: &Entity<'_>) -> Result<String, Error> {
    serde_json::to_string(entity)
        .map_err(|e| Error::Invalid(format!("azure-table: cannot write the entity: {e}")))
}

/// An entity as answers carry it: its `RowKey` and its value's parts, each as given.
#[derive(Debug)]
pub struct EntityAnswer<'a> {
    row_key: Json<'a, Ignored>,
    /// Part `i` at index `i`; `Absent` where the entity has none.
    parts: Vec<Json<'a, Ignored>>,
}

impl EntityAnswer<'_> {
    pub fn row_key(&self) -> Result<&str, &'static str> {
        self.row_key.as_str().ok_or("an entity without `RowKey`")
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
                };
                while let Some(Text(name)) = map.next_key::<Text<'de>>()? {
                    let slot = if name == "RowKey" {
                        &mut entity.row_key
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
