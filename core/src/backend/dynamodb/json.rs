//! The JSON plumbing of the DynamoDB bodies: how attribute values are written, and the one
//! struct every answer is read into.
//!
//! Fuzzed: [`read_answer`] takes any bytes.
//!
//! Every answer, errors included, is read into [`Answer`], and each operation reads the
//! fields it needs (one struct keeps the artifact small: each derived reader is code). A
//! field twice is serde_json's `duplicate field` error and reaches the caller as
//! `Malformed`, like any other answer of the wrong shape; a body that is not a JSON object
//! is not DynamoDB's at all.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::items::{AttrAnswer, ItemAnswer};
pub use crate::backend::json::{Base64, Loose, Text, Unreadable, describe};
use crate::error::Error;

/// A visitor's methods for the JSON values that are neither objects, arrays nor strings:
/// each reads as `$value`.
macro_rules! other_values {
    ($value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

/// A request body.
pub fn to_json(body: &impl Serialize) -> Result<Vec<u8>, Error> {
    crate::backend::json::to_json("dynamodb", body)
}

/// An attribute value as requests write it.
#[derive(Debug, Serialize)]
pub enum Attr<'a> {
    S(&'a str),
    /// A string the request owns (a fresh version token).
    #[serde(rename = "S")]
    Token(String),
    /// The sort key of a key: `/` and the key.
    #[serde(rename = "S")]
    Sort(Slashed<'a>),
    N(Number),
    B(Base64<'a>),
}

/// `/` and the key, written straight into the body.
#[derive(Debug)]
pub struct Slashed<'a>(pub &'a str);

impl Serialize for Slashed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("/{}", self.0))
    }
}

/// A DynamoDB number, which travels as a JSON string.
#[derive(Debug)]
pub struct Number(pub i64);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// A map of one entry, the table's name to what the request asks of it (`RequestItems`).
pub struct Table<'a, T>(pub &'a str, pub T);

impl<T: Serialize> Serialize for Table<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.0, &self.1)?;
        map.end()
    }
}

/// An answer of DynamoDB: of `GetItem`, `Query`, `UpdateItem`, the batches, or an error.
#[derive(Debug, Default, Deserialize)]
pub struct Answer<'a> {
    #[serde(borrow, rename = "Item")]
    pub item: Option<ItemAnswer<'a>>,
    #[serde(borrow, rename = "Items")]
    pub items: Option<Vec<ItemAnswer<'a>>>,
    #[serde(borrow, rename = "LastEvaluatedKey")]
    pub last_evaluated_key: Option<ItemAnswer<'a>>,
    #[serde(borrow, rename = "Attributes")]
    pub attributes: Option<ItemAnswer<'a>>,
    #[serde(borrow, rename = "Responses")]
    pub responses: Option<Tables<Vec<ItemAnswer<'a>>>>,
    #[serde(borrow, rename = "UnprocessedKeys")]
    pub unprocessed_keys: Option<Tables<Entries<'a>>>,
    #[serde(borrow, rename = "UnprocessedItems")]
    pub unprocessed_items: Option<Tables<Entries<'a>>>,
    /// An error's `<namespace>#<Type>`.
    #[serde(borrow, default, rename = "__type")]
    pub kind: Loose<'a>,
    #[serde(borrow, default)]
    pub message: Loose<'a>,
    #[serde(borrow, default, rename = "Message")]
    pub capital_message: Loose<'a>,
}

/// An entry a batch left unprocessed: a key (`UnprocessedKeys`), or a write request
/// (`UnprocessedItems`).
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    #[serde(borrow)]
    pub k: Option<AttrAnswer<'a>>,
    #[serde(borrow, rename = "PutRequest")]
    pub put: Option<Request<'a>>,
    #[serde(borrow, rename = "DeleteRequest")]
    pub delete: Option<Request<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct Request<'a> {
    #[serde(borrow, rename = "Item")]
    pub item: Option<ItemAnswer<'a>>,
    #[serde(borrow, rename = "Key")]
    pub key: Option<ItemAnswer<'a>>,
}

/// Reads any answer. A successful one is always a JSON object: a 200 with anything else is
/// not DynamoDB's, and must not pass for a write done.
pub fn read_answer(body: &[u8]) -> Result<Answer<'_>, Unreadable> {
    let text = object_text(body).ok_or(Unreadable::Foreign)?;
    serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            Unreadable::Malformed(describe(&e))
        } else {
            Unreadable::Foreign
        }
    })
}

/// `body` as text if it can only be a JSON object (or no JSON at all): it starts with `{`.
/// Serde's derived structs also take an array, field by field.
pub fn object_text(body: &[u8]) -> Option<&str> {
    let text = core::str::from_utf8(body).ok()?;
    text.trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
        .then_some(text)
}

/// The values of a map whose keys are table names, each name once; `None` for any other
/// JSON value.
#[derive(Debug)]
pub struct Tables<T>(pub Option<Vec<T>>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Tables<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Values<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Values<T> {
            type Value = Tables<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of tables")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut names: Vec<Text<'de>> = Vec::new();
                let mut values = Vec::new();
                while let Some(name) = map.next_key::<Text<'de>>()? {
                    if names.iter().any(|seen| seen.0 == name.0) {
                        return Err(serde::de::Error::custom("duplicate field (a table's name)"));
                    }
                    names.push(name);
                    values.push(map.next_value()?);
                }
                Ok(Tables(Some(values)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain(seq).map(|()| Tables(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Tables(None))
            }
            other_values!(Tables(None));
        }
        deserializer.deserialize_any(Values(PhantomData))
    }
}

/// What a table holds in `UnprocessedKeys` and `UnprocessedItems`: the list itself, or an
/// object holding it as `Keys`; `None` for anything else.
#[derive(Debug)]
pub struct Entries<'a>(pub Option<Vec<Entry<'a>>>);

impl<'de: 'a, 'a> Deserialize<'de> for Entries<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Keyed<'a> {
            #[serde(borrow, rename = "Keys")]
            keys: Option<Vec<Entry<'a>>>,
        }
        struct List;
        impl<'de> Visitor<'de> for List {
            type Value = Entries<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let keyed = Keyed::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Entries(keyed.keys))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(entry) = seq.next_element()? {
                    list.push(entry);
                }
                Ok(Entries(Some(list)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Entries(None))
            }
            other_values!(Entries(None));
        }
        deserializer.deserialize_any(List)
    }
}

/// Reads the rest of a JSON array, whatever it holds.
fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}
