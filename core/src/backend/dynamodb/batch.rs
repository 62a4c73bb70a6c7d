//! `BatchGetItem` and `BatchWriteItem`: requests of up to 100 and 25 entries, resending what
//! DynamoDB leaves unprocessed, and the readers of their answers.
//!
//! Fuzzed: [`read_batch_get`] and [`read_batch_write`] take any bytes.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::Serialize;

use super::DynamoBackend;
use super::items::{AttrAnswer, Key, key_of_sort};
use super::json::{Entries, Entry, Table, Tables, Unreadable, read_answer, to_json};
use crate::error::Error;

/// Keys per `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;
/// Requests per `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;
/// Rounds of `Unprocessed*` in a row without progress before a batch gives up.
const MAX_IDLE_ROUNDS: u32 = 8;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchGetItem<'a> {
    request_items: Table<'a, KeysAndAttributes<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KeysAndAttributes<'a> {
    keys: &'a [Key<'a>],
    consistent_read: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct BatchWriteItem<'a> {
    request_items: Table<'a, &'a [&'a WriteRequest<'a>]>,
}

/// One entry of a `BatchWriteItem`.
#[derive(Debug, Serialize)]
pub enum WriteRequest<'a> {
    PutRequest {
        #[serde(rename = "Item")]
        item: super::items::Item<'a>,
    },
    DeleteRequest {
        #[serde(rename = "Key")]
        key: Key<'a>,
    },
}

/// What a `BatchGetItem` answered: the items found (key, expiry `e` in epoch seconds, value),
/// live or expired, and the keys left unprocessed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BatchGot {
    pub found: Vec<(String, Option<i64>, Vec<u8>)>,
    pub unprocessed: Vec<String>,
}

/// Reads a `BatchGetItem` answer.
pub fn read_batch_get(body: &[u8]) -> Result<BatchGot, Unreadable> {
    let answer = read_answer(body)?;
    let tables = answer
        .responses
        .and_then(|tables| tables.0)
        .ok_or("a BatchGetItem answer without its `Responses`")?;
    let mut found = Vec::new();
    for item in tables.iter().flatten() {
        found.push((item.key()?, item.expires()?, item.value()?));
    }
    // A key left unprocessed is the entry itself.
    let unprocessed = unprocessed(answer.unprocessed_keys, |entry| Some(entry.k.as_ref()))?;
    Ok(BatchGot { found, unprocessed })
}

/// Reads a `BatchWriteItem` answer: the keys of the requests left unprocessed.
pub fn read_batch_write(body: &[u8]) -> Result<Vec<String>, Unreadable> {
    let answer = read_answer(body)?;
    let field = answer
        .unprocessed_items
        .ok_or("a BatchWriteItem answer without its `UnprocessedItems`")?;
    let items = unprocessed(Some(field), |entry| {
        let put = entry.put.as_ref().and_then(|put| put.item.as_ref());
        put.or_else(|| entry.delete.as_ref().and_then(|d| d.key.as_ref()))
            .map(|item| item.k.as_ref())
    })?;
    Ok(items)
}

/// The keys of the entries a batch answer left unprocessed: whatever the table maps to,
/// `key_of` finds the item in it, and gives the item's sort key.
fn unprocessed<'e>(
    field: Option<Tables<Entries<'e>>>,
    key_of: impl for<'x> Fn(&'x Entry<'e>) -> Option<Option<&'x AttrAnswer<'e>>>,
) -> Result<Vec<String>, &'static str> {
    let mut keys = Vec::new();
    let Some(tables) = field.and_then(|tables| tables.0) else {
        return Ok(keys);
    };
    for entries in tables {
        let entries = entries.0.ok_or("unprocessed entries are not a list")?;
        for entry in &entries {
            let sort = key_of(entry).ok_or("an unprocessed entry without its key")?;
            keys.push(key_of_sort(sort)?);
        }
    }
    Ok(keys)
}

/// An item a batch read found: its expiry `e` (epoch seconds), and its value.
pub type Found = (Option<i64>, Vec<u8>);

impl DynamoBackend {
    /// Reads `keys` (each once) in `BatchGetItem`s of 100, resending what DynamoDB leaves
    /// unprocessed; the expiry and value of each item found, live or expired, by key.
    pub(super) fn batch_get(&self, keys: Vec<&String>) -> Result<BTreeMap<String, Found>, Error> {
        let mut found = BTreeMap::new();
        let mut pending = keys;
        let mut idle_rounds = 0;
        while !pending.is_empty() {
            let take = pending.len().min(MAX_BATCH_GET);
            let rest = pending.split_off(take);
            let chunk = core::mem::replace(&mut pending, rest);
            let request_keys = chunk
                .iter()
                .map(|key| Key::new(&self.partition, key))
                .collect::<Result<Vec<Key<'_>>, Error>>()?;
            let body = to_json(&BatchGetItem {
                request_items: Table(
                    self.table(),
                    KeysAndAttributes {
                        keys: &request_keys,
                        consistent_read: true,
                    },
                ),
            })?;
            let got = self.exchange("BatchGetItem", &body, read_batch_get)?;
            found.extend(
                got.found
                    .into_iter()
                    .map(|(key, expires_s, value)| (key, (expires_s, value))),
            );
            if got.unprocessed.is_empty() {
                idle_rounds = 0;
                continue;
            }
            idle_rounds =
                self.wait_for_capacity(idle_rounds, got.unprocessed.len() == chunk.len())?;
            let mut retried: Vec<&String> = chunk
                .into_iter()
                .filter(|key| got.unprocessed.iter().any(|u| u == *key))
                .collect();
            retried.append(&mut pending);
            pending = retried;
        }
        Ok(found)
    }

    /// Sends `requests` (each with its key) in `BatchWriteItem`s of 25, resending what
    /// DynamoDB leaves unprocessed.
    pub(super) fn batch_write(&self, requests: &[(&str, WriteRequest<'_>)]) -> Result<(), Error> {
        let mut pending: Vec<&(&str, WriteRequest<'_>)> = requests.iter().collect();
        let mut idle_rounds = 0;
        while !pending.is_empty() {
            let take = pending.len().min(MAX_BATCH_WRITE);
            let rest = pending.split_off(take);
            let chunk = core::mem::replace(&mut pending, rest);
            let entries: Vec<&WriteRequest<'_>> =
                chunk.iter().map(|(_, request)| request).collect();
            let body = to_json(&BatchWriteItem {
                request_items: Table(self.table(), &entries),
            })?;
            let unprocessed = self.exchange("BatchWriteItem", &body, read_batch_write)?;
            if unprocessed.is_empty() {
                idle_rounds = 0;
                continue;
            }
            idle_rounds = self.wait_for_capacity(idle_rounds, unprocessed.len() == chunk.len())?;
            let mut retried: Vec<&(&str, WriteRequest<'_>)> = chunk
                .into_iter()
                .filter(|(key, _)| unprocessed.iter().any(|u| u == key))
                .collect();
            retried.append(&mut pending);
            pending = retried;
        }
        Ok(())
    }

    /// Backs off before resending unprocessed batch entries; gives up after
    /// `MAX_IDLE_ROUNDS` answers in a row that processed nothing.
    fn wait_for_capacity(&self, idle_rounds: u32, nothing_done: bool) -> Result<u32, Error> {
        let idle_rounds = if nothing_done { idle_rounds + 1 } else { 0 };
        if idle_rounds >= MAX_IDLE_ROUNDS {
            return Err(Error::GaveUp(format!(
                "POST {}: DynamoDB left a batch unprocessed {MAX_IDLE_ROUNDS} times in a row (throughput exceeded)",
                self.account.client.target("/")
            )));
        }
        if !super::RETRY.pause(&self.account.client, idle_rounds) {
            return Err(Error::GaveUp(format!(
                "POST {}: DynamoDB left part of a batch unprocessed, and the call's deadline (`timeout-ms`) leaves no time to resend it",
                self.account.client.target("/")
            )));
        }
        Ok(idle_rounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ITEM_A: &str = r#"{"b":{"S":"x"},"k":{"S":"/a"},"v":{"B":"YQ=="},"ver":{"S":"t"}}"#;
    const ITEM_E: &str = r#"{"b":{"S":"x"},"k":{"S":"/e"},"v":{"B":"ZQ=="},"ver":{"S":"1"},"e":{"N":"1700000000"},"m":{"B":"bQ=="}}"#;

    #[test]
    fn batch_get_answers_give_items_and_unprocessed_keys() {
        let body = format!(
            r#"{{"Responses":{{"t":[{ITEM_A},{ITEM_E}]}},"UnprocessedKeys":{{"t":{{"Keys":[{{"b":{{"S":"x"}},"k":{{"S":"/b"}}}}],"ConsistentRead":true}}}}}}"#
        );
        assert_eq!(
            read_batch_get(body.as_bytes()),
            Ok(BatchGot {
                found: alloc::vec![
                    (String::from("a"), None, b"a".to_vec()),
                    (String::from("e"), Some(1_700_000_000), b"e".to_vec()),
                ],
                unprocessed: alloc::vec![String::from("b")],
            })
        );
        // A list in place of `{"Keys": …}`, and anything but a map, are read as before.
        let listed = r#"{"Responses":{"t":[]},"UnprocessedKeys":{"t":[{"k":{"S":"/c"}}]}}"#;
        assert_eq!(
            read_batch_get(listed.as_bytes()).map(|got| got.unprocessed),
            Ok(alloc::vec![String::from("c")])
        );
        for nothing in [
            r#"{"Responses":{}}"#,
            r#"{"Responses":{},"UnprocessedKeys":{}}"#,
            r#"{"Responses":{},"UnprocessedKeys":null}"#,
            r#"{"Responses":{},"UnprocessedKeys":[1]}"#,
        ] {
            assert_eq!(
                read_batch_get(nothing.as_bytes()),
                Ok(BatchGot::default()),
                "{nothing}"
            );
        }
        assert_eq!(
            read_batch_get(br#"{"UnprocessedKeys":{}}"#),
            Err(Unreadable::from(
                "a BatchGetItem answer without its `Responses`"
            ))
        );
        assert_eq!(
            read_batch_get(br#"{"Responses":{},"UnprocessedKeys":{"t":7}}"#),
            Err(Unreadable::from("unprocessed entries are not a list"))
        );
        assert_eq!(read_batch_get(b"[]"), Err(Unreadable::Foreign));
    }

    #[test]
    fn batch_write_answers_give_the_keys_of_unprocessed_requests() {
        let body = format!(
            r#"{{"UnprocessedItems":{{"t":[{{"PutRequest":{{"Item":{ITEM_A}}}}},{{"DeleteRequest":{{"Key":{{"k":{{"S":"/b"}}}}}}}}]}}}}"#
        );
        assert_eq!(
            read_batch_write(body.as_bytes()),
            Ok(alloc::vec![String::from("a"), String::from("b")])
        );
        assert_eq!(
            read_batch_write(br#"{"UnprocessedItems":{}}"#),
            Ok(Vec::new())
        );
        assert_eq!(
            read_batch_write(br#"{}"#),
            Err(Unreadable::from(
                "a BatchWriteItem answer without its `UnprocessedItems`"
            ))
        );
        assert_eq!(
            read_batch_write(br#"{"UnprocessedItems":{"t":[{"PutRequest":{}}]}}"#),
            Err(Unreadable::from("an unprocessed entry without its key"))
        );
    }

    #[test]
    fn a_field_or_table_twice_is_malformed() {
        for body in [
            r#"{"UnprocessedItems":{},"UnprocessedItems":{}}"#,
            r#"{"UnprocessedItems":{"t":[],"t":[]}}"#,
            r#"{"UnprocessedItems":{"t":[{"DeleteRequest":{"Key":{"k":{"S":"/a"},"k":{"S":"/b"}}}}]}}"#,
            r#"{"UnprocessedItems":{"t":{"Keys":[],"Keys":[]}}}"#,
        ] {
            let Err(Unreadable::Malformed(detail)) = read_batch_write(body.as_bytes()) else {
                panic!("{body}");
            };
            assert!(detail.starts_with("duplicate field"), "{body}: {detail}");
        }
        let Err(Unreadable::Malformed(detail)) =
            read_batch_get(br#"{"Responses":{"t":[{"v":{"B":"YQ==","B":"Yg=="}}]}}"#)
        else {
            panic!("`B` twice");
        };
        assert!(detail.starts_with("duplicate field `B`"), "{detail}");
    }
}
