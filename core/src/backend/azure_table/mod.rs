//! The `azure-table` backend: the Table service REST API of Azure Table storage (and of the
//! Cosmos DB Table API, and Azurite), signed with Shared Key.
//!
//! Every bucket lives in one table (`table` setting, `kvplug` by default): a bucket is a
//! partition, `PartitionKey` = the escaped `prefix`, `!`, the escaped bucket name
//! (`kvplug_settings::layout`; the bucket's `!` is escaped too, so no prefix and bucket pair
//! spells another's), and a key is a row, `RowKey` = the escaped key. Key fields may not
//! hold `/ \ # ?` or control characters, and `%` and `'` break some of the service's (and
//! Azurite's) URL handling, so those characters and the escape character `~` itself are
//! written `~XX` (their code point in hex), and the empty name is a lone `~`: every key has
//! exactly one spelling, which decodes back. The value is binary, split over properties
//! `v0`, `v1`, … of up to 64 KiB each (one empty `v0` for an empty value); a write replaces
//! the whole entity, so no stale part survives.
//!
//! Compare-and-swap is native (`If-Match` on the entity's ETag, or an insert that fails when
//! the row exists). The service cannot add, so `increment` reads and then writes
//! conditionally, in a bounded loop. Batch writes are entity group transactions (`$batch`,
//! one changeset per request, all rows in one partition), atomic per request.
//!
//! Entities may also carry the extension's metadata and deadline (`entries`): an expired
//! entity stays in the table until rewritten, and every read path here treats it as absent.

pub mod batch;
pub mod entries;
pub mod errors;
pub mod keys;
pub mod odata;
pub mod paths;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

use kvplug_settings::backend::{AZURE_PARTITION, AzureTableSettings};
use kvplug_settings::layout;
use kvplug_settings::url::Scheme;

use self::batch::{MAX_BATCH_BYTES, MAX_BATCH_OPS, Part};
use self::entries::{Condition, Seen, Written, now_ms};
use self::errors::busy;
use self::keys::{
    check_field, check_key, check_value, decode_key, encode_bucket, escape_field, key_field,
};
use self::odata::{Entity, EntityAnswer, entity_json, read_query};
use self::paths::{next_cursor, valid_cursor};
use super::retry::{Attempt, Policy, Repeat};
use super::{
    Backend, MAX_INCREMENT_ATTEMPTS, Page, Swap, Version, Versioned, check_batch, check_pairs,
    chunks, counter_error, distinct, last_wins,
};
use crate::client::{Client, Response, SMALL_ANSWER_BYTES, Verb};
use crate::clock::Utc;
use crate::error::Error;
use crate::settings::Settings;
use crate::signing::shared_key::{self, SharedKey};

/// The REST version requests ask for; its JSON format is the one parsed here.
const API_VERSION: &str = "2019-02-02";
const ACCEPT: &str = "application/json;odata=nometadata";
/// The header every answer of the Table service carries, errors included: how its answers
/// are told from those of whatever else a wrong `url` reaches.
const REQUEST_ID: &str = "x-ms-request-id";
const JSON: &str = "application/json";

/// The service allows 15 comparisons per `$filter`: one for the partition, 14 for rows.
const MAX_FILTER_ROWS: usize = 14;
/// A query returns at most 1000 entities per page.
const MAX_PAGE: u32 = 1000;
/// A request the service answered as busy or timed out, where repeating it is safe, is
/// retried 5 times, waiting from 100 ms.
const RETRY: Policy = Policy {
    retries: 5,
    base_ms: 100,
    cap_ms: 5_000,
};
/// Continuation pages followed within one `get_many` chunk; the service pages a 14-row
/// result only at its own timeouts or partition-server boundaries, so this is never reached.
const MAX_CONTINUATIONS: usize = 64;

/// A bucket: one partition of the table.
#[derive(Debug, Clone)]
pub struct TableBackend {
    inner: Rc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    signer: SharedKey,
    table: String,
    /// The escaped `PartitionKey` of the bucket.
    partition: String,
    /// `scheme://authority/base`: operations inside a batch name their entity by full URL.
    base_url: String,
    page_size: u32,
}

/// The most one entity's answer can hold: an entity is at most 1 MiB of JSON on the service,
/// with escaping and the envelope on top.
const ENTITY_ANSWER_BYTES: u64 = 2 << 20;
/// The most a query page can hold: `get-many` asks for up to [`MAX_FILTER_ROWS`] whole
/// entities at a time, `list-keys` for up to `page-size` (at most 10,000) row keys of at most
/// 1 KiB each.
const QUERY_ANSWER_BYTES: u64 = 32 << 20;

impl TableBackend {
    /// One page of the live keys that start with `prefix`, from a query `path` that selects
    /// `RowKey` and the deadline, continued after `cursor`: expired keys are dropped (the
    /// service never deletes them), so a page may be short. `operation` names the call in
    /// the error for a cursor this backend did not return.
    fn live_keys(
        &self,
        mut path: String,
        cursor: Option<&str>,
        operation: &str,
        prefix: &str,
    ) -> Result<Page, Error> {
        if let Some(cursor) = cursor {
            if !valid_cursor(cursor) {
                return Err(Error::Invalid(format!(
                    "azure-table {operation}: not a cursor this backend returned (it holds the service's NextPartitionKey and NextRowKey)"
                )));
            }
            path.push('&');
            path.push_str(cursor);
        }
        let response = self.send(Verb::Get, &path, &[], None, &[], Repeat::Always)?;
        if response.status != 200 {
            return Err(self.failure(Verb::Get, &path, &response));
        }
        let now = now_ms();
        let rows =
            read_query(&response.body).map_err(|e| self.client().malformed(Verb::Get, &path, e))?;
        let mut keys = Vec::with_capacity(rows.len());
        for entity in rows {
            let malformed = |e| self.client().malformed(Verb::Get, &path, e);
            let row = entity.row_key().map_err(malformed)?;
            let live = entity.live_at(now).map_err(malformed)?;
            let key = decode_key(row).ok_or_else(|| {
                self.client().malformed(
                    Verb::Get,
                    &path,
                    format!("RowKey `{row}` in the bucket's partition was not written by kvplug"),
                )
            })?;
            // A prefix's range holds exactly its keys; the check costs nothing and keeps a
            // service that orders otherwise from leaking others.
            if live && key.starts_with(prefix) {
                keys.push(key);
            }
        }
        Ok(Page {
            keys,
            cursor: next_cursor(&response),
        })
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }

    /// Sends one signed request, whose successful answer may hold at most `cap` bytes.
    fn send_once(
        &self,
        verb: Verb,
        path: &str,
        extra: &[(&str, &str)],
        content_type: Option<&str>,
        body: &[u8],
        cap: u64,
    ) -> Result<Response, Error> {
        let date = Utc::now().http_date();
        let target = self.client().target(path);
        let (signed_path, query) = target.split_once('?').unwrap_or((&target, ""));
        let authorization = self.inner.signer.authorization(&shared_key::Request {
            verb: verb.name(),
            content_type: content_type.unwrap_or(""),
            date: &date,
            path: signed_path,
            query,
        });
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(8 + extra.len());
        headers.extend_from_slice(&[
            ("x-ms-date", date.as_str()),
            ("x-ms-version", API_VERSION),
            ("accept", ACCEPT),
            ("dataserviceversion", "3.0"),
            ("maxdataserviceversion", "3.0;NetFx"),
            ("authorization", authorization.as_str()),
        ]);
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        headers.extend_from_slice(extra);
        let response = self.client().send_capped(verb, path, &headers, body, cap)?;
        if response.header(REQUEST_ID).is_none() {
            return Err(super::foreign(
                verb,
                self.client().target(path),
                response.status,
                "the Azure Table service",
                "no `x-ms-request-id` header",
            ));
        }
        Ok(response)
    }

    /// Sends a request, repeating it with backoff while the service is busy if `repeat`
    /// allows. A `GET` may answer a query page ([`QUERY_ANSWER_BYTES`]), anything else an
    /// acknowledgement; [`TableBackend::send_capped`] reads one entity with a tighter cap.
    fn send(
        &self,
        verb: Verb,
        path: &str,
        extra: &[(&str, &str)],
        content_type: Option<&str>,
        body: &[u8],
        repeat: Repeat,
    ) -> Result<Response, Error> {
        let cap = match verb {
            Verb::Get => QUERY_ANSWER_BYTES,
            _ => SMALL_ANSWER_BYTES,
        };
        self.send_capped(verb, path, extra, content_type, body, repeat, cap)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one request's parts, as `send` takes them, and its cap"
    )]
    fn send_capped(
        &self,
        verb: Verb,
        path: &str,
        extra: &[(&str, &str)],
        content_type: Option<&str>,
        body: &[u8],
        repeat: Repeat,
        cap: u64,
    ) -> Result<Response, Error> {
        let request = format!("{} {}", verb.name(), self.client().target(path));
        RETRY.run(self.client(), &request, || {
            let response = self.send_once(verb, path, extra, content_type, body, cap)?;
            // The Table service does not say whether a busy answer acted: never "refused".
            let busy = busy(&response).map_err(|e| self.client().malformed(verb, path, e))?;
            if busy && repeat.allows(false) {
                Ok(Attempt::Busy {
                    status: response.status,
                    reason: self.service_error(verb, path, &response.body)?.reason(),
                })
            } else {
                Ok(Attempt::Done(response))
            }
        })
    }

    /// The body of a plain write: the value alone, so no metadata or deadline survives it.
    fn entity_json(&self, row: &str, value: &[u8]) -> Result<String, Error> {
        entity_json(&Entity {
            partition: &self.inner.partition,
            row,
            value,
            metadata: &[],
            expires_ms: None,
        })
    }

    /// A compare-and-swap's write, of a whole new entry (no metadata, no deadline): `false`
    /// if `expected` no longer holds. A handle on a live entity whose deadline has passed
    /// fails without a request; one on an expired entity writes over it on condition of its
    /// ETag, so a writer that came first is never overwritten.
    fn try_write(&self, row: &str, expected: &Version, value: &[u8]) -> Result<bool, Error> {
        let condition = match expected {
            Version::Absent => Condition::Absent,
            Version::Tag(tag) => match Seen::read(tag) {
                Seen::Live { expires_ms, .. }
                    if kvplug_protocol::entries::is_expired(expires_ms, now_ms()) =>
                {
                    return Ok(false);
                }
                Seen::Live { etag, .. } | Seen::Expired { etag } => Condition::Match(etag),
            },
        };
        let written = self.write_entity(row, condition, value, &[], None)?;
        Ok(matches!(written, Written::Done(_)))
    }

    /// What a compare-and-swap starts from: an expired entity reads as absent, but its
    /// version is its ETag, so that a write over it is conditional.
    fn versioned(&self, row: &str) -> Result<Versioned, Error> {
        let Some(stored) = self.read(row)? else {
            return Ok(Versioned::absent());
        };
        Ok(if stored.live_at(now_ms()) {
            Versioned {
                version: Version::Tag(
                    Seen::Live {
                        expires_ms: stored.body.expires_ms,
                        etag: &stored.etag,
                    }
                    .tag(),
                ),
                value: Some(stored.body.value),
            }
        } else {
            Versioned {
                value: None,
                version: Version::Tag(Seen::Expired { etag: &stored.etag }.tag()),
            }
        })
    }

    /// Runs a query to its last page and hands each entity to `each`.
    fn query_all(
        &self,
        path: &str,
        mut each: impl FnMut(&EntityAnswer<'_>) -> Result<(), &'static str>,
    ) -> Result<(), Error> {
        let mut continuation = String::new();
        for _ in 0..MAX_CONTINUATIONS {
            let page_path = format!("{path}{continuation}");
            let response = self.send(Verb::Get, &page_path, &[], None, &[], Repeat::Always)?;
            if response.status != 200 {
                return Err(self.failure(Verb::Get, &page_path, &response));
            }
            let entities = read_query(&response.body)
                .map_err(|e| self.client().malformed(Verb::Get, &page_path, e))?;
            for entity in &entities {
                each(entity).map_err(|e| self.client().malformed(Verb::Get, &page_path, e))?;
            }
            match next_cursor(&response) {
                None => return Ok(()),
                Some(cursor) => {
                    continuation.clear();
                    continuation.push('&');
                    continuation.push_str(&cursor);
                }
            }
        }
        Err(self.client().malformed(
            Verb::Get,
            path,
            format!(
                "still continuing after {MAX_CONTINUATIONS} pages of at most {MAX_FILTER_ROWS} rows"
            ),
        ))
    }

    /// The rows among `rows` that exist now.
    fn existing<'r>(&self, rows: &[&'r str]) -> Result<Vec<&'r str>, Error> {
        let mut present = alloc::collections::BTreeSet::new();
        for chunk in rows.chunks(MAX_FILTER_ROWS) {
            let path = self.query_path(chunk, Some("RowKey"), None);
            self.query_all(&path, |entity| {
                present.insert(String::from(entity.row_key()?));
                Ok(())
            })?;
        }
        Ok(rows
            .iter()
            .copied()
            .filter(|row| present.contains(*row))
            .collect())
    }
}

impl Backend for TableBackend {
    fn open(settings: &Settings, bucket: &str) -> Result<Self, Error> {
        // Buckets are partitions and need no creating; a missing table shows on first use.
        // The settings are checked where `kvplug seal` checks them too.
        let AzureTableSettings {
            account_name,
            account_key,
            table,
        } = AzureTableSettings::from_settings(settings).map_err(Error::Settings)?;
        let signer = SharedKey::new(&account_name, &account_key)?;
        // The prefix is escaped as a key is (it holds no marker, settings refuse one); the
        // escaping never writes the marker, so the namespace argument holds for the field.
        let prefix = escape_field(&settings.prefix, |_| false);
        let partition = check_field(
            layout::namespace(&prefix, bucket, encode_bucket, None)?,
            AZURE_PARTITION,
        )?;
        let endpoint = &settings.endpoint;
        let scheme = match endpoint.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let base_url = format!("{scheme}://{}{}", endpoint.authority, endpoint.base_path);
        Ok(TableBackend {
            inner: Rc::new(Inner {
                client: Client::new(settings, None),
                signer,
                table,
                partition,
                base_url,
                page_size: settings.page_size.clamp(1, MAX_PAGE),
            }),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        let row = key_field(key, "key")?;
        let now = now_ms();
        Ok(self
            .read(&row)?
            .filter(|stored| stored.live_at(now))
            .map(|stored| stored.body.value))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        let row = key_field(key, "key")?;
        check_value(value)?;
        let path = self.entity_path(&row);
        let body = self.entity_json(&row, value)?;
        // No `If-Match`: insert or replace, the whole entity.
        let response = self.send(
            Verb::Put,
            &path,
            &[],
            Some(JSON),
            body.as_bytes(),
            Repeat::Always,
        )?;
        if response.status == 204 {
            Ok(())
        } else {
            Err(self.failure(Verb::Put, &path, &response))
        }
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let row = key_field(key, "key")?;
        let path = self.entity_path(&row);
        let response = self.send(
            Verb::Delete,
            &path,
            &[("if-match", "*")],
            None,
            &[],
            Repeat::Always,
        )?;
        if response.status == 204 || self.row_missing(Verb::Delete, &path, &response)? {
            Ok(())
        } else {
            Err(self.failure(Verb::Delete, &path, &response))
        }
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        let row = key_field(key, "key")?;
        // The deadline alone: one small request, as before the extension.
        Ok(self
            .read_deadline(&row)?
            .is_some_and(|(deadline, _)| !kvplug_protocol::entries::is_expired(deadline, now_ms())))
    }

    fn list(&self, cursor: Option<&str>) -> Result<Page, Error> {
        // Each key with its deadline: expired keys are dropped, so a page may be short.
        let select = format!("RowKey,{}", odata::DEADLINE);
        let path = self.query_path(&[], Some(&select), Some(self.inner.page_size));
        self.live_keys(path, cursor, "list-keys", "")
    }

    /// A read, then a write of the sum on condition of the ETag read (an insert when the
    /// row is absent), again from a fresh read when it loses. A live counter keeps its
    /// metadata and deadline; an expired one counts from 0 and loses both.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let row = key_field(key, "key")?;
        for _ in 0..MAX_INCREMENT_ATTEMPTS {
            let stored = self.read(&row)?;
            let now = now_ms();
            let live = stored.as_ref().filter(|stored| stored.live_at(now));
            let sum = kvplug_protocol::counter::add(
                live.map(|stored| stored.body.value.as_slice()),
                delta,
            )
            .map_err(|e| counter_error(key, e))?;
            let (metadata, expires_ms) = live.map_or((&[][..], None), |stored| {
                (stored.body.metadata.as_slice(), stored.body.expires_ms)
            });
            let condition = match &stored {
                None => Condition::Absent,
                Some(stored) => Condition::Match(&stored.etag),
            };
            let text = format!("{sum}");
            let written =
                self.write_entity(&row, condition, text.as_bytes(), metadata, expires_ms)?;
            if let Written::Done(_) = written {
                return Ok(sum);
            }
        }
        Err(Error::GaveUp(format!(
            "increment of `{key}`: gave up after {MAX_INCREMENT_ATTEMPTS} attempts, each lost to a concurrent write"
        )))
    }

    fn read_versioned(&self, key: &str) -> Result<Versioned, Error> {
        let row = key_field(key, "key")?;
        self.versioned(&row)
    }

    fn write_if(&self, key: &str, expected: &Version, value: &[u8]) -> Result<Swap, Error> {
        let row = key_field(key, "key")?;
        check_value(value)?;
        if self.try_write(&row, expected, value)? {
            Ok(Swap::Done)
        } else {
            Ok(Swap::Conflict(self.versioned(&row)?))
        }
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        check_batch("get-many", keys, check_key)?;
        let rows = keys
            .iter()
            .map(|key| key_field(key, "key"))
            .collect::<Result<Vec<String>, Error>>()?;
        let unique: Vec<&str> = distinct(&rows).into_iter().map(String::as_str).collect();
        let mut found: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let now = now_ms();
        for chunk in unique.chunks(MAX_FILTER_ROWS) {
            let path = self.query_path(chunk, None, None);
            self.query_all(&path, |entity| {
                if entity.live_at(now)? {
                    found.insert(String::from(entity.row_key()?), entity.value()?);
                }
                Ok(())
            })?;
        }
        Ok(rows.iter().map(|row| found.get(row).cloned()).collect())
    }

    fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), Error> {
        // An entity may appear once per changeset; the last value is what sequential sets
        // would have left.
        check_pairs(pairs, check_key)?;
        let pairs = last_wins(pairs);
        let mut parts = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let row = key_field(key, "key")?;
            check_value(value)?;
            let entity = self.entity_json(&row, value)?;
            let text = self.batch_part(Verb::Put, &row, Some(&entity));
            parts.push(Part { key, row, text });
        }
        self.write_batches(&parts, "set-many")
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        check_batch("delete-many", keys, check_key)?;
        let mut parts = Vec::with_capacity(keys.len());
        for key in distinct(keys) {
            let row = key_field(key, "key")?;
            let text = self.batch_part(Verb::Delete, &row, None);
            parts.push(Part { key, row, text });
        }
        for chunk in chunks(&parts, MAX_BATCH_OPS, MAX_BATCH_BYTES, |p| p.text.len()) {
            self.delete_chunk(chunk)?;
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use self::keys::{MAX_KEY_UNITS, MAX_VALUE};
    use self::odata::{EntityBody, read_entity, read_entry};
    use super::*;

    pub(super) fn backend(bucket: &str) -> TableBackend {
        backend_under("", bucket)
    }

    fn backend_under(prefix: &str, bucket: &str) -> TableBackend {
        let settings = Settings::from_lookup(|name| {
            Ok(match name {
                "url" => Some(String::from("http://127.0.0.1:10002/devstoreaccount1")),
                "account-name" => Some(String::from("devstoreaccount1")),
                "account-key" => Some(String::from("a2V5")),
                "prefix" => Some(String::from(prefix)),
                _ => None,
            })
        })
        .unwrap();
        TableBackend::open(&settings, bucket).unwrap()
    }

    #[test]
    fn partitions_end_the_prefix_with_the_one_marker() {
        let partition =
            |prefix: &str, bucket: &str| backend_under(prefix, bucket).inner.partition.clone();
        assert_eq!(
            partition("apps/guestbook/", "notes"),
            "apps~2Fguestbook~2F!notes"
        );
        assert_eq!(
            partition("", "apps/guestbook/notes"),
            "!apps~2Fguestbook~2Fnotes"
        );
        assert_eq!(partition("a", ""), "a!~");
        assert_eq!(partition("", "a"), "!a");
        assert_eq!(partition("", "a!~"), "!a~21~7E");
        assert_eq!(partition("", "~21"), "!~7E21");
    }

    #[test]
    fn the_largest_entity_fits_a_1_mib_request() {
        // The longest fields: 512 three-byte characters each (the partition's first is the
        // marker), a JSON escape adds nothing.
        let widest = "語".repeat(512);
        let b = backend(&widest[3..]);
        assert_eq!(b.inner.partition.encode_utf16().count(), MAX_KEY_UNITS);
        let row = key_field(&widest, "key").unwrap();
        let value: Vec<u8> = (0..MAX_VALUE).map(|i| i as u8).collect();
        let body = b.entity_json(&row, &value).unwrap();
        assert!(body.len() <= 1 << 20, "{} bytes", body.len());
        assert_eq!(read_entity(body.as_bytes()).unwrap(), value);
        // With the most metadata and the latest deadline beside it, the entry still fits.
        let metadata = vec![0xff; 2000];
        let entry = EntityBody {
            value,
            metadata,
            expires_ms: Some(i64::MAX as u64),
        };
        let body = entity_json(&Entity {
            partition: &b.inner.partition,
            row: &row,
            value: &entry.value,
            metadata: &entry.metadata,
            expires_ms: entry.expires_ms,
        })
        .unwrap();
        assert!(body.len() <= 1 << 20, "{} bytes", body.len());
        assert_eq!(read_entry(body.as_bytes()).unwrap(), entry);
        assert_eq!(
            b.entity_json("~", b"").unwrap(),
            format!(
                "{{\"PartitionKey\":\"{}\",\"RowKey\":\"~\",\"v0@odata.type\":\"Edm.Binary\",\"v0\":\"\"}}",
                b.inner.partition
            )
        );
    }

    #[test]
    fn settings_are_checked_at_open() {
        let open = |pairs: &[(&str, &str)]| {
            let settings = Settings::from_lookup(|name| {
                Ok(pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| String::from(*v)))
            })
            .unwrap();
            TableBackend::open(&settings, "b").map(drop)
        };
        let url = ("url", "http://127.0.0.1:1/devstoreaccount1");
        let name = ("account-name", "devstoreaccount1");
        let key = ("account-key", "a2V5");
        assert!(open(&[url, name, key]).is_ok());
        for (pairs, setting) in [
            (&[url, key][..], "account-name"),
            (&[url, name][..], "account-key"),
            (&[url, name, key, ("table", "kv-plug")][..], "table"),
            (&[url, name, key, ("table", "1abc")][..], "table"),
        ] {
            let Err(Error::Settings(message)) = open(pairs) else {
                panic!("{setting} must be checked");
            };
            assert!(message.contains(setting), "{message}");
        }
    }
}
