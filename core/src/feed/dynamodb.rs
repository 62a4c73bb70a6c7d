//! DynamoDB's change feed: the table's stream (DynamoDB Streams, `x-amz-target:
//! DynamoDBStreams_20120810.*`), signed like the table calls (docs/watch-design.md §4.4, §6).
//!
//! The table owner turns the stream on (`StreamSpecification`, `NEW_IMAGE` or
//! `NEW_AND_OLD_IMAGES`); the adapter never changes table settings, so a table without one is
//! a lasting error. Every bucket is a partition of the one table, so a stream carries every
//! bucket's writes (and the driver's own position saves): records of other partitions are read
//! and skipped.
//!
//! **Positions** are text: the stream's label, then for each shard being read
//! `,<shard id>=<sequence number>` (the last record read; empty when nothing was read yet,
//! which starts the shard at `TRIM_HORIZON`), shard ids in byte order. A table whose stream
//! was turned off and on again, or re-created (a restore), has a new label, and the changes
//! before it are a [`Lapse::Gap`]. A shard that is read to its end is dropped once one of its
//! children is in the position, and a shard is read only when its parent has been (a listed
//! shard with a descendant in the position is finished), which keeps each key's changes in
//! order across splits.
//!
//! A poll that found nothing for the bucket hands back the position it was given, though it
//! read further (the feed remembers how far, and the next poll goes on from there): the
//! driver saves a position only when it changes, and each save is a record in the same
//! stream. After [`SKIPPED_BEFORE_SAVE`] records of other buckets it hands over the position
//! reached, so a restarted driver does not read a whole day of others' writes again.
//!
//! A change's value is the new image's, as `get` reads it (a counter's number as its decimal
//! text: `items::ItemAnswer::value`); a `REMOVE` is a delete.
//!
//! **Cost.** One `GetRecords` per shard per poll round, every 200 ms at most while nothing
//! comes (AWS allows 5 per second per shard); the iterator a page hands back is kept and used
//! while it continues where the position is, so a steady reader makes no `GetShardIterator`
//! calls. `DescribeTable` and `DescribeStream` once, and again when a shard ends.
//!
//! **Failures.** moto answers an iterator or shard id it does not know with a `500` page
//! (docs/watch-design.md §6), and AWS's iterators expire after 15 minutes: either gets one
//! new iterator from the position's sequence number, then the read fails.
//! `TrimmedDataAccessException` (past AWS's 24-hour retention) is a [`Lapse::Gap`]. On AWS
//! the stream calls go to `streams.dynamodb.<region>.amazonaws.com`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use super::{Batch, Change, Feed, Lapse};
use crate::backend::Backend;
use crate::backend::dynamodb::errors::error_of;
use crate::backend::dynamodb::items::{AttrAnswer, ItemAnswer, key_of_sort};
use crate::backend::dynamodb::json::{Text, Unreadable, object_text, to_json};
use crate::backend::dynamodb::{DynamoBackend, STREAMS_API};
use crate::backend::json::describe;
use crate::bindings::wasi::clocks::monotonic_clock;
use crate::client::Verb;
use crate::error::Error;
use crate::settings::Settings;

const MS: u64 = 1_000_000;
/// The pause between two reads of a stream that had nothing new.
const POLL_MS: u64 = 200;
/// Records of other partitions read past before an empty batch hands over the position it
/// reached: saving it is itself a write to the table, hence a record, so saving on every
/// empty read would never let the stream go quiet.
const SKIPPED_BEFORE_SAVE: u32 = 1000;
/// The longest shard id DynamoDB makes (its API's limit) and the longest sequence number.
const MAX_SHARD_ID: usize = 65;
const MAX_SEQUENCE: usize = 40;

/// Where a reader of the stream stands: which stream, and per shard the last sequence number
/// read (empty: none yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    label: String,
    shards: BTreeMap<String, String>,
}

/// A stream label: the stream's creation time, ISO 8601 (`2026-12-04T16:05:00.123`; moto
/// adds microseconds), so that no other backend's position (a number) passes for one.
fn is_label(text: &str) -> bool {
    let bytes = text.as_bytes();
    let date = bytes.get(..11).is_some_and(|head| {
        head.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            _ => b.is_ascii_digit(),
        })
    });
    date && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '+'))
}

fn shard_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')
}

fn is_sequence(text: &str) -> bool {
    !text.is_empty() && text.len() <= MAX_SEQUENCE && text.bytes().all(|b| b.is_ascii_digit())
}

/// Whether sequence number `a` comes after `b` (both decimal, too wide for a `u64`).
fn sequence_after(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    (a.len(), a) > (b.len(), b)
}

impl Position {
    pub fn parse(text: &str) -> Option<Position> {
        let mut parts = text.split(',');
        let label = parts.next()?;
        if !is_label(label) {
            return None;
        }
        let mut shards = BTreeMap::new();
        for part in parts {
            let (shard, sequence) = part.split_once('=')?;
            let shard_ok =
                !shard.is_empty() && shard.len() <= MAX_SHARD_ID && shard.chars().all(shard_char);
            if !shard_ok || !(sequence.is_empty() || is_sequence(sequence)) {
                return None;
            }
            if shards
                .insert(String::from(shard), String::from(sequence))
                .is_some()
            {
                return None;
            }
        }
        Some(Position {
            label: String::from(label),
            shards,
        })
    }

    pub fn encode(&self) -> String {
        let mut text = self.label.clone();
        for (shard, sequence) in &self.shards {
            text.push(',');
            text.push_str(shard);
            text.push('=');
            text.push_str(sequence);
        }
        text
    }

    fn start(label: &str) -> Position {
        Position {
            label: String::from(label),
            shards: BTreeMap::new(),
        }
    }
}

/// The settings of the stream's connection: AWS serves streams on a host of their own,
/// `streams.dynamodb.<region>.amazonaws.com` beside `dynamodb.<region>.amazonaws.com`; any
/// other `url` (moto, a proxy, a VPC endpoint) is taken to serve both.
fn streams_settings(settings: &Settings) -> Settings {
    let mut streams = settings.clone();
    let authority = &settings.endpoint.authority;
    if let Some(region) = kvplug_settings::backend::region_of_host(authority) {
        streams.endpoint.authority = format!("streams.{authority}");
        streams.region.get_or_insert(region);
    }
    streams
}

/// A shard as `DescribeStream` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Shard {
    id: String,
    parent: Option<String>,
}

/// The shards to read now: those in the position, and listed ones not yet started whose
/// parent is finished or no longer listed (a listed shard with a descendant in the position is
/// finished). A child waits while its parent is being read: a key's earlier writes are in the
/// parent.
fn readable(listing: &[Shard], position: &Position) -> Vec<String> {
    let parents: BTreeMap<&str, Option<&str>> = listing
        .iter()
        .map(|s| (s.id.as_str(), s.parent.as_deref()))
        .collect();
    let mut finished = BTreeSet::new();
    for started in position.shards.keys() {
        let mut at = parents.get(started.as_str()).copied().flatten();
        // Bounded by the listing: a loop of parents (a lying service) cannot spin.
        let mut steps = listing.len();
        while let Some(parent) = at {
            if steps == 0 || !finished.insert(parent) {
                break;
            }
            steps -= 1;
            at = parents.get(parent).copied().flatten();
        }
    }
    listing
        .iter()
        .filter(|shard| !finished.contains(shard.id.as_str()))
        .filter(|shard| {
            position.shards.contains_key(&shard.id)
                || shard
                    .parent
                    .as_deref()
                    .is_none_or(|parent| finished.contains(parent) || !parents.contains_key(parent))
        })
        .map(|shard| shard.id.clone())
        .collect()
}

#[derive(Deserialize)]
struct RecordsAnswer<'a> {
    #[serde(borrow, rename = "Records")]
    records: Option<Vec<Record<'a>>>,
    #[serde(borrow, rename = "NextShardIterator")]
    next: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, rename = "eventName")]
    event: Option<Text<'a>>,
    #[serde(borrow)]
    dynamodb: Option<StreamRecord<'a>>,
}

#[derive(Deserialize)]
struct StreamRecord<'a> {
    #[serde(borrow, rename = "SequenceNumber")]
    sequence: Option<Text<'a>>,
    #[serde(borrow, rename = "Keys")]
    keys: Option<Keys<'a>>,
    #[serde(borrow, rename = "NewImage")]
    new_image: Option<ItemAnswer<'a>>,
}

#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow)]
    b: Option<AttrAnswer<'a>>,
    #[serde(borrow)]
    k: Option<AttrAnswer<'a>>,
}

/// One page of `GetRecords`, as this bucket sees it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The bucket's changes under the key prefix, in stream order.
    pub changes: Vec<Change>,
    /// The sequence number of the page's last record, of any bucket.
    pub last: Option<String>,
    pub records: usize,
    /// Where the shard goes on; `None` once a closed shard is read to its end.
    pub next: Option<String>,
}

/// Reads a `GetRecords` answer: the changes of the items whose partition key is `partition`
/// and whose key starts with `prefix`, each as `get` would read it (a counter as its decimal
/// text). Sequence numbers must rise, from after `after` (empty: the shard's start).
pub fn read_records(
    body: &[u8],
    partition: &str,
    prefix: &str,
    after: &str,
) -> Result<Page, Unreadable> {
    let text = object_text(body).ok_or(Unreadable::Foreign)?;
    let answer: RecordsAnswer<'_> = serde_json::from_str(text).map_err(|e| {
        if e.is_data() {
            Unreadable::Malformed(describe(&e))
        } else {
            Unreadable::Foreign
        }
    })?;
    let records = answer
        .records
        .ok_or("a GetRecords answer without `Records`")?;
    let mut page = Page {
        records: records.len(),
        next: answer.next.map(|n| n.0.into_owned()),
        ..Page::default()
    };
    let mut last = String::from(after);
    for record in records {
        let data = record.dynamodb.ok_or("a record without `dynamodb`")?;
        let sequence = data
            .sequence
            .filter(|s| is_sequence(&s.0))
            .ok_or("a record without a decimal `SequenceNumber`")?;
        if !last.is_empty() && !sequence_after(&sequence.0, &last) {
            return Err("records out of sequence order".into());
        }
        last = sequence.0.into_owned();
        let keys = data.keys.ok_or("a record without `Keys`")?;
        let ours = keys
            .b
            .as_ref()
            .and_then(|b| b.s.as_ref())
            .is_some_and(|b| b.0 == partition);
        if !ours {
            continue;
        }
        let key = key_of_sort(keys.k.as_ref()).map_err(|e| malformed_record(&last, e))?;
        if !key.starts_with(prefix) {
            continue;
        }
        let value = match record.event.as_ref().map(|e| &*e.0) {
            Some("REMOVE") => None,
            Some("INSERT" | "MODIFY") => {
                let image = data
                    .new_image
                    .ok_or_else(|| malformed_record(&last, "no `NewImage`"))?;
                // An item with no value is none the app could `get`: moto records one (the
                // key alone) before the real image when `UpdateItem` creates an item, and
                // another client may write one. Refusing it would stop the feed at it forever.
                if !image.has_value() {
                    continue;
                }
                Some(image.value().map_err(|e| malformed_record(&last, e))?)
            }
            _ => return Err(malformed_record(&last, "an unknown `eventName`")),
        };
        page.changes.push(Change { key, value });
    }
    page.last = (page.records > 0).then_some(last);
    Ok(page)
}

fn malformed_record(sequence: &str, why: &str) -> Unreadable {
    Unreadable::Malformed(format!("the record at sequence number {sequence}: {why}"))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeTable<'a> {
    table_name: &'a str,
}

#[derive(Deserialize)]
struct TableAnswer {
    #[serde(rename = "Table")]
    table: Option<TableDescription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableDescription {
    latest_stream_arn: Option<String>,
    latest_stream_label: Option<String>,
    stream_specification: Option<StreamSpecification>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSpecification {
    #[serde(default)]
    stream_enabled: bool,
    stream_view_type: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStream<'a> {
    stream_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exclusive_start_shard_id: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamAnswer {
    stream_description: Option<StreamDescription>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamDescription {
    #[serde(default)]
    shards: Vec<ShardAnswer>,
    last_evaluated_shard_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ShardAnswer {
    shard_id: Option<String>,
    parent_shard_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIterator<'a> {
    stream_arn: &'a str,
    shard_id: &'a str,
    shard_iterator_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IteratorAnswer {
    shard_iterator: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecords<'a> {
    shard_iterator: &'a str,
}

/// Where in a shard a read starts, for messages: after `after`, or (empty) from its start.
fn place(after: &str) -> String {
    if after.is_empty() {
        String::from("from its start")
    } else {
        format!("after sequence number `{after}`")
    }
}

/// How a stream call went when it did not succeed.
enum Refusal {
    /// A `500`, with what the service said: moto's answer to an iterator or shard id it does
    /// not know (AWS's `InternalServerError`).
    Broken(String),
    /// `ExpiredIteratorException` (AWS: 15 minutes).
    Expired,
    /// `TrimmedDataAccessException`: past the stream's 24-hour retention.
    Trimmed(String),
    Other(Error),
}

struct Stream {
    arn: String,
    label: String,
}

/// Where a poll stopped: the position it handed over, and how far it really read.
struct Reading {
    returned: String,
    through: Position,
    skipped: u32,
}

/// The feed of one bucket: the table's stream, filtered to the bucket's partition.
pub struct DynamoFeed {
    /// The table's connection (`DescribeTable`), and the stream's.
    backend: DynamoBackend,
    streams: DynamoBackend,
    prefix: String,
    stream: Option<Stream>,
    listing: Option<Vec<Shard>>,
    /// Per shard: the sequence number an iterator continues after (empty: the shard's
    /// start), and the iterator.
    iterators: BTreeMap<String, (String, String)>,
    reading: Option<Reading>,
    /// When the last read that found nothing was made (monotonic clock): the next read waits
    /// until [`POLL_MS`] after it, across polls too, so an idle reader stays within AWS's 5
    /// reads per second per shard.
    idle_since: Option<u64>,
}

impl DynamoFeed {
    fn path(operation: &str) -> String {
        format!("/ ({operation})")
    }

    /// The connection `operation` goes through: the table's, or its stream's.
    fn via(&self, operation: &str) -> &DynamoBackend {
        if operation == "DescribeTable" {
            &self.backend
        } else {
            &self.streams
        }
    }

    fn read<'a, T: Deserialize<'a>>(&self, operation: &str, body: &'a [u8]) -> Result<T, Error> {
        let text = object_text(body).ok_or_else(|| {
            self.via(operation)
                .foreign(operation, 200, "not a JSON object")
        })?;
        serde_json::from_str(text)
            .map_err(|e| self.via(operation).malformed(operation, describe(&e)))
    }

    /// One stream call, signed; its answer or why not.
    fn stream_call(&self, operation: &str, body: &[u8]) -> Result<Result<Vec<u8>, Refusal>, Error> {
        crate::deadline::begin();
        let response = self
            .streams
            .send_unchecked(STREAMS_API, operation, body)
            .map_err(|error| match error {
                // Every call is a `POST /`: the operation says which one failed.
                Error::Transport {
                    method,
                    path,
                    detail,
                } => Error::Transport {
                    method,
                    path: format!("{path} ({operation})"),
                    detail,
                },
                other => other,
            })?;
        if response.status == 500 {
            let said = match error_of(&response.body) {
                Ok(error) if error.kind.is_empty() => error.message,
                Ok(error) => format!("{}: {}", error.kind, error.message),
                Err(_) => String::new(),
            };
            return Ok(Err(Refusal::Broken(said)));
        }
        if !DynamoBackend::is_dynamodbs(&response) {
            return Err(self.streams.foreign(
                operation,
                response.status,
                "no `x-amzn-requestid` header",
            ));
        }
        if response.status == 200 {
            return Ok(Ok(response.body));
        }
        let error = error_of(&response.body).map_err(|e| self.streams.malformed(operation, e))?;
        let client = self.streams.client();
        let message = client.scrub(&error.message);
        Ok(Err(match error.kind.as_str() {
            "TrimmedDataAccessException" => Refusal::Trimmed(message),
            "ExpiredIteratorException" => Refusal::Expired,
            "UnrecognizedClientException"
            | "InvalidSignatureException"
            | "MissingAuthenticationTokenException"
            | "IncompleteSignatureException"
            | "AccessDeniedException"
            | "ExpiredTokenException" => Refusal::Other(Error::AccessDenied),
            // Throttling is a `400` too, but one that passes: the driver must retry it, as it
            // does what is not a client error, rather than stop (AWS allows 5 reads per second
            // per shard, shared by every reader of the stream).
            kind @ ("LimitExceededException"
            | "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded") => Refusal::Other(Error::GaveUp(format!(
                "POST {}: HTTP {}: {operation}: {kind}: {message}",
                Self::path(operation),
                response.status
            ))),
            kind => Refusal::Other(client.status_with(
                Verb::Post,
                &Self::path(operation),
                response.status,
                &format!("{operation}: {kind}: {message}"),
            )),
        }))
    }

    /// The table's stream, read once (`DescribeTable`); a table without one with new images
    /// is a lasting error.
    fn stream(&mut self) -> Result<(String, String), Error> {
        if let Some(stream) = &self.stream {
            return Ok((stream.arn.clone(), stream.label.clone()));
        }
        let body = to_json(&DescribeTable {
            table_name: self.backend.table(),
        })?;
        let answer = self
            .backend
            .exchange("DescribeTable", &body, |bytes| Ok(bytes.to_vec()))?;
        let answer: TableAnswer = self.read("DescribeTable", &answer)?;
        let table = answer.table.ok_or_else(|| {
            self.backend
                .malformed("DescribeTable", "an answer without `Table`")
        })?;
        let spec = table.stream_specification;
        let enabled = spec.as_ref().is_some_and(|s| s.stream_enabled);
        let view = spec.and_then(|s| s.stream_view_type).unwrap_or_default();
        let name = self.backend.table();
        let enable = format!(
            "enable it as the table's owner, e.g. `aws dynamodb update-table --table-name {name} \
             --stream-specification StreamEnabled=true,StreamViewType=NEW_IMAGE` (the adapter \
             never changes table settings)"
        );
        if !enabled {
            return Err(Error::Invalid(format!(
                "DynamoDB table `{name}` has no stream (`StreamSpecification`), which the watch \
                 driver reads: {enable}"
            )));
        }
        if view != "NEW_IMAGE" && view != "NEW_AND_OLD_IMAGES" {
            return Err(Error::Invalid(format!(
                "DynamoDB table `{name}`'s stream is `{view}`: the watch driver needs the new \
                 values, `NEW_IMAGE` or `NEW_AND_OLD_IMAGES`; a stream's view type cannot be \
                 changed, so turn it off and on again with the new type as the table's owner"
            )));
        }
        let (Some(arn), Some(label)) = (table.latest_stream_arn, table.latest_stream_label) else {
            return Err(self.backend.malformed(
                "DescribeTable",
                "a stream without `LatestStreamArn` or `LatestStreamLabel`",
            ));
        };
        if Position::parse(&label).is_none() {
            return Err(self.backend.malformed(
                "DescribeTable",
                "a `LatestStreamLabel` of unexpected characters",
            ));
        }
        self.stream = Some(Stream {
            arn: arn.clone(),
            label: label.clone(),
        });
        Ok((arn, label))
    }

    /// The stream's shards (`DescribeStream`, every page), read once and again when a shard
    /// ends.
    fn listing(&mut self, arn: &str) -> Result<Vec<Shard>, Error> {
        if let Some(listing) = &self.listing {
            return Ok(listing.clone());
        }
        let mut shards = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let body = to_json(&DescribeStream {
                stream_arn: arn,
                exclusive_start_shard_id: start.as_deref(),
            })?;
            let bytes = match self.stream_call("DescribeStream", &body)? {
                Ok(bytes) => bytes,
                Err(refusal) => return Err(self.refused("DescribeStream", refusal)),
            };
            let answer: StreamAnswer = self.read("DescribeStream", &bytes)?;
            let description = answer.stream_description.ok_or_else(|| {
                self.streams
                    .malformed("DescribeStream", "an answer without `StreamDescription`")
            })?;
            for shard in description.shards {
                let id = shard
                    .shard_id
                    .filter(|id| {
                        !id.is_empty() && id.len() <= MAX_SHARD_ID && id.chars().all(shard_char)
                    })
                    .ok_or_else(|| {
                        self.streams
                            .malformed("DescribeStream", "a shard without a usable `ShardId`")
                    })?;
                shards.push(Shard {
                    id,
                    parent: shard.parent_shard_id,
                });
            }
            match description.last_evaluated_shard_id {
                Some(last) if start.as_deref() != Some(last.as_str()) => start = Some(last),
                _ => break,
            }
        }
        self.listing = Some(shards.clone());
        Ok(shards)
    }

    fn refused(&self, operation: &str, refusal: Refusal) -> Error {
        let client = self.streams.client();
        let path = Self::path(operation);
        match refusal {
            Refusal::Broken(said) => client.status_quoting(
                Verb::Post,
                &path,
                500,
                &format!(
                    "{operation} failed (moto answers so for a shard or iterator it does not have)"
                ),
                &said,
            ),
            Refusal::Expired => {
                client.status_with(Verb::Post, &path, 400, "ExpiredIteratorException")
            }
            Refusal::Trimmed(message) => client.status_with(
                Verb::Post,
                &path,
                400,
                &format!("TrimmedDataAccessException: {message}"),
            ),
            Refusal::Other(error) => error,
        }
    }

    /// A new iterator of `shard` continuing after `after` (empty: from its start).
    fn iterator(&self, arn: &str, shard: &str, after: &str) -> Result<String, Lapse> {
        let body = to_json(&GetShardIterator {
            stream_arn: arn,
            shard_id: shard,
            shard_iterator_type: if after.is_empty() {
                "TRIM_HORIZON"
            } else {
                "AFTER_SEQUENCE_NUMBER"
            },
            sequence_number: (!after.is_empty()).then_some(after),
        })?;
        match self.stream_call("GetShardIterator", &body)? {
            Ok(bytes) => {
                let answer: IteratorAnswer = self.read("GetShardIterator", &bytes)?;
                answer.shard_iterator.ok_or_else(|| {
                    self.streams
                        .malformed("GetShardIterator", "an answer without `ShardIterator`")
                        .into()
                })
            }
            Err(Refusal::Trimmed(message)) => Err(Self::trimmed(shard, after, &message)),
            Err(Refusal::Broken(said)) => Err(Lapse::Failed(self.streams.client().status_quoting(
                Verb::Post,
                &Self::path("GetShardIterator"),
                500,
                &format!(
                    "no iterator for shard `{shard}` {} (moto answers so for a shard or \
                     sequence number its stream does not have)",
                    place(after)
                ),
                &said,
            ))),
            Err(refusal) => Err(Lapse::Failed(self.refused("GetShardIterator", refusal))),
        }
    }

    /// The gap of a trimmed shard; [`DynamoFeed::round`] says where to resume (the shard's
    /// start, in the position being read).
    fn trimmed(shard: &str, after: &str, message: &str) -> Lapse {
        Lapse::Gap {
            resume_after: None,
            detail: format!(
                "DynamoDB no longer holds the records of shard `{shard}` after sequence number \
                 {after} (a stream keeps 24 hours: {message})"
            ),
        }
    }

    /// One page of `shard` after `after`: a kept iterator if it continues there, else a new
    /// one; a `500` or an expired iterator gets one new iterator, once.
    fn page(&mut self, arn: &str, shard: &str, after: &str) -> Result<Page, Lapse> {
        let (mut iterator, mut fresh) = match self.iterators.remove(shard) {
            Some((at, iterator)) if at == after => (iterator, false),
            _ => (self.iterator(arn, shard, after)?, true),
        };
        loop {
            let body = to_json(&GetRecords {
                shard_iterator: &iterator,
            })?;
            match self.stream_call("GetRecords", &body)? {
                Ok(bytes) => {
                    let page = read_records(&bytes, self.backend.partition(), &self.prefix, after)
                        .map_err(|why| match why {
                            Unreadable::Foreign => {
                                self.streams.foreign("GetRecords", 200, "not a JSON object")
                            }
                            Unreadable::Malformed(detail) => {
                                self.streams.malformed("GetRecords", detail)
                            }
                        })?;
                    if let Some(next) = &page.next {
                        let at = page.last.clone().unwrap_or_else(|| String::from(after));
                        self.iterators
                            .insert(String::from(shard), (at, next.clone()));
                    }
                    return Ok(page);
                }
                Err(Refusal::Broken(_) | Refusal::Expired) if !fresh => {
                    iterator = self.iterator(arn, shard, after)?;
                    fresh = true;
                }
                Err(Refusal::Broken(said)) => {
                    return Err(Lapse::Failed(self.streams.client().status_quoting(
                        Verb::Post,
                        &Self::path("GetRecords"),
                        500,
                        &format!(
                            "reading shard `{shard}` {} failed with a new iterator too (moto \
                             answers so for a sequence number its stream does not have)",
                            place(after)
                        ),
                        &said,
                    )));
                }
                Err(Refusal::Trimmed(message)) => {
                    return Err(Self::trimmed(shard, after, &message));
                }
                Err(refusal) => return Err(Lapse::Failed(self.refused("GetRecords", refusal))),
            }
        }
    }

    /// `shard` was read to its end: its children take its place, once the stream lists one.
    fn ended(&mut self, arn: &str, position: &mut Position, shard: &str) -> Result<(), Error> {
        self.listing = None;
        let listing = self.listing(arn)?;
        let children: Vec<&Shard> = listing
            .iter()
            .filter(|s| s.parent.as_deref() == Some(shard))
            .collect();
        if children.is_empty() {
            // No child yet (or the stream was turned off): read the table's stream again next
            // time, which finds a replaced one.
            self.stream = None;
            return Ok(());
        }
        position.shards.remove(shard);
        for child in children {
            position.shards.entry(child.id.clone()).or_default();
        }
        Ok(())
    }

    /// Reads every readable shard once; the changes found, and whether any shard had records.
    fn round(
        &mut self,
        arn: &str,
        position: &mut Position,
        skipped: &mut u32,
    ) -> Result<(Vec<Change>, bool), Lapse> {
        let listing = self.listing(arn)?;
        let mut changes = Vec::new();
        let mut any = false;
        for shard in readable(&listing, position) {
            let after = position.shards.get(&shard).cloned().unwrap_or_default();
            let page = self
                .page(arn, &shard, &after)
                .map_err(|lapse| match lapse {
                    Lapse::Gap {
                        resume_after: None,
                        detail,
                    } => {
                        let mut resume = position.clone();
                        resume.shards.insert(shard.clone(), String::new());
                        Lapse::Gap {
                            resume_after: Some(resume.encode()),
                            detail,
                        }
                    }
                    other => other,
                })?;
            any |= page.records > 0;
            let others = page.records.saturating_sub(page.changes.len());
            *skipped = skipped.saturating_add(u32::try_from(others).unwrap_or(u32::MAX));
            position
                .shards
                .insert(shard.clone(), page.last.unwrap_or(after));
            changes.extend(page.changes);
            if page.next.is_none() {
                self.ended(arn, position, &shard)?;
            }
        }
        Ok((changes, any))
    }
}

impl Feed for DynamoFeed {
    fn open(settings: &Settings, bucket: &str, prefix: &str) -> Result<Self, Error> {
        Ok(DynamoFeed {
            backend: DynamoBackend::open(settings, bucket)?,
            streams: DynamoBackend::open(&streams_settings(settings), bucket)?,
            prefix: String::from(prefix),
            stream: None,
            listing: None,
            iterators: BTreeMap::new(),
            reading: None,
            idle_since: None,
        })
    }

    /// Reads every shard to its end from `TRIM_HORIZON`: one `GetRecords` per 1,000 records
    /// (1 MB) the stream holds, up to 24 hours of the whole table's writes on AWS, once per
    /// first start of a driver. An empty page before the end (AWS may answer one) ends the
    /// read early: the driver then delivers some older changes again, never misses one.
    fn head(&mut self) -> Result<String, Error> {
        let (arn, label) = self.stream()?;
        let mut position = Position::start(&label);
        let mut skipped = 0;
        loop {
            let before = position.clone();
            let (_, any) = self
                .round(&arn, &mut position, &mut skipped)
                .map_err(|lapse| match lapse {
                    Lapse::Failed(error) => error,
                    Lapse::Gap { detail, .. } => Error::GaveUp(detail),
                })?;
            if !any && position == before {
                break;
            }
        }
        self.reading = None;
        Ok(position.encode())
    }

    fn poll(&mut self, after: &str, wait_ms: u64) -> Result<Batch, Lapse> {
        let (mut position, mut skipped) = match &self.reading {
            Some(reading) if reading.returned == after => {
                (reading.through.clone(), reading.skipped)
            }
            _ => (
                Position::parse(after).ok_or_else(|| {
                    Error::Invalid(format!("`{after}` is not a DynamoDB stream position"))
                })?,
                0,
            ),
        };
        let (arn, label) = self.stream()?;
        if position.label != label {
            return Err(Lapse::Gap {
                resume_after: Some(Position::start(&label).encode()),
                detail: format!(
                    "the table's stream is not the one this position was read from (`{}`, now \
                     `{label}`): it was turned off and on, or the table re-created or restored, \
                     and the writes in between are in no stream this driver reads",
                    position.label
                ),
            });
        }
        let listing = self.listing(&arn)?;
        let gone: Vec<String> = position
            .shards
            .keys()
            .filter(|shard| !listing.iter().any(|s| &s.id == *shard))
            .cloned()
            .collect();
        if !gone.is_empty() {
            for shard in &gone {
                position.shards.remove(shard);
            }
            return Err(Lapse::Gap {
                resume_after: Some(position.encode()),
                detail: format!(
                    "the stream no longer has shard(s) {} of this position (a stream keeps 24 \
                     hours of records; a shard id it never had was not saved by this driver)",
                    gone.join(", ")
                ),
            });
        }
        let until = monotonic_clock::now().saturating_add(wait_ms.saturating_mul(MS));
        loop {
            if let Some(idle_since) = self.idle_since {
                let next = idle_since.saturating_add(POLL_MS.saturating_mul(MS));
                let now = monotonic_clock::now();
                if now < next {
                    monotonic_clock::subscribe_duration(next.min(until).saturating_sub(now))
                        .block();
                }
            }
            let (changes, any) = self.round(&arn, &mut position, &mut skipped)?;
            let now = monotonic_clock::now();
            self.idle_since = (!any).then_some(now);
            let hand_over = !changes.is_empty() || skipped >= SKIPPED_BEFORE_SAVE;
            if hand_over || now >= until {
                let returned = if hand_over {
                    skipped = 0;
                    position.encode()
                } else {
                    String::from(after)
                };
                self.reading = Some(Reading {
                    returned: returned.clone(),
                    through: position,
                    skipped,
                });
                return Ok(Batch {
                    changes,
                    position: returned,
                });
            }
        }
    }

    fn valid(position: &str) -> bool {
        Position::parse(position).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const L: &str = "2026-12-04T16:05:00.123";

    fn position(text: &str) -> Position {
        Position::parse(&text.replace('L', L)).unwrap()
    }

    #[test]
    fn positions_round_trip_and_refuse_bad_syntax() {
        for text in [
            "2026-12-04T16:05:00.123456",
            "2026-12-04T16:05:00.123,shardId-00000001541626099285-f35f62ef=1100000000017454423009",
            "2026-12-04T16:05:00.123,a=,b=12",
        ] {
            assert_eq!(Position::parse(text).unwrap().encode(), text);
            assert!(DynamoFeed::valid(text), "{text}");
        }
        // Shards are written in byte order whatever order they came in.
        assert_eq!(position("L,b=2,a=1").encode(), format!("{L},a=1,b=2"));
        for bad in [
            "",
            ",a=1",
            "L,",
            "L,a",
            "L,=1",
            "L,a=1,a=2",
            "L,a=x",
            "L,a=-1",
            "L a",
            "L,a b=1",
            "L;a:1",
            // Another backend's position, and labels that are not a time.
            "7",
            "label,a=1",
            "2026-12-04 16:05,a=1",
        ] {
            let bad = bad.replace('L', L);
            assert!(!DynamoFeed::valid(&bad), "{bad:?}");
        }
        assert!(!DynamoFeed::valid(&format!("{L},a={}", "1".repeat(41))));
        assert!(!DynamoFeed::valid(&format!("{L},{}=1", "s".repeat(66))));
    }

    #[test]
    fn aws_streams_have_a_host_of_their_own() {
        let settings = |url: &str| {
            Settings::from_lookup(|name| {
                Ok(match name {
                    "url" => Some(String::from(url)),
                    "access-key-id" => Some(String::from("AKIDEXAMPLE")),
                    "secret-access-key" => Some(String::from("secret")),
                    _ => None,
                })
            })
            .unwrap()
        };
        let aws = streams_settings(&settings("https://dynamodb.eu-west-1.amazonaws.com"));
        assert_eq!(
            aws.endpoint.authority,
            "streams.dynamodb.eu-west-1.amazonaws.com"
        );
        assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
        let moto = settings("http://127.0.0.1:4567");
        assert_eq!(streams_settings(&moto), moto);
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("10", "9"));
        assert!(sequence_after(
            "1100000000017454423010",
            "1100000000017454423009"
        ));
        assert!(!sequence_after("9", "10"));
        assert!(!sequence_after("5", "5"));
        assert!(!sequence_after("005", "5"));
    }

    fn shard(id: &str, parent: Option<&str>) -> Shard {
        Shard {
            id: String::from(id),
            parent: parent.map(String::from),
        }
    }

    #[test]
    fn parents_are_read_before_children() {
        let listing = vec![
            shard("p", None),
            shard("c1", Some("p")),
            shard("c2", Some("p")),
            shard("g", Some("c1")),
            shard("orphan", Some("trimmed")),
        ];
        // Reading the parent: the children wait; a shard whose parent is gone is read.
        assert_eq!(readable(&listing, &position("L,p=5")), ["p", "orphan"]);
        // The parent finished (a child in the position): both children, not the parent.
        assert_eq!(
            readable(&listing, &position("L,c1=,orphan=3")),
            ["c1", "c2", "orphan"]
        );
        // A grandchild in the position finishes its whole line.
        assert_eq!(
            readable(&listing, &position("L,c2=1,g=4,orphan=3")),
            ["c2", "g", "orphan"]
        );
    }

    const RECORDS: &str = r#"{"Records":[
        {"eventName":"INSERT","dynamodb":{"SequenceNumber":"101","Keys":{"b":{"S":"!watched"},"k":{"S":"/a"}},
         "NewImage":{"b":{"S":"!watched"},"k":{"S":"/a"},"v":{"B":"aGk="},"ver":{"S":"1"}}}},
        {"eventName":"MODIFY","dynamodb":{"SequenceNumber":"102","Keys":{"b":{"S":"!other"},"k":{"S":"/a"}},
         "NewImage":{"b":{"S":"!other"},"k":{"S":"/a"},"v":{"B":"eA=="}}}},
        {"eventName":"MODIFY","dynamodb":{"SequenceNumber":"103","Keys":{"b":{"S":"!watched"},"k":{"S":"/n"}},
         "NewImage":{"b":{"S":"!watched"},"k":{"S":"/n"},"n":{"N":"-42"},"ver":{"S":"2"}}}},
        {"eventName":"REMOVE","dynamodb":{"SequenceNumber":"104","Keys":{"b":{"S":"!watched"},"k":{"S":"/a"}}}}
    ],"NextShardIterator":"it-2"}"#;

    #[test]
    fn records_read_as_the_buckets_changes() {
        let page = read_records(RECORDS.as_bytes(), "!watched", "", "100").unwrap();
        assert_eq!(
            page,
            Page {
                changes: vec![
                    Change {
                        key: String::from("a"),
                        value: Some(b"hi".to_vec())
                    },
                    // A counter reads as `get` returns it: its decimal text.
                    Change {
                        key: String::from("n"),
                        value: Some(b"-42".to_vec())
                    },
                    Change {
                        key: String::from("a"),
                        value: None
                    },
                ],
                last: Some(String::from("104")),
                records: 4,
                next: Some(String::from("it-2")),
            }
        );
        // The other bucket's record is read past; a prefix keeps only its keys.
        let other = read_records(RECORDS.as_bytes(), "!other", "", "").unwrap();
        assert_eq!(
            other.changes,
            [Change {
                key: String::from("a"),
                value: Some(b"x".to_vec())
            }]
        );
        let prefixed = read_records(RECORDS.as_bytes(), "!watched", "n", "").unwrap();
        assert_eq!(prefixed.changes.len(), 1);
        assert_eq!(prefixed.last.as_deref(), Some("104"));
        // An empty page of a closed shard: no last record, no next iterator.
        let end = read_records(br#"{"Records":[]}"#, "!watched", "", "104").unwrap();
        assert_eq!((end.last, end.next, end.records), (None, None, 0));
    }

    #[test]
    fn malformed_records_are_refused_naming_the_record() {
        let record = |event: &str, data: &str| {
            format!(r#"{{"Records":[{{"eventName":"{event}","dynamodb":{data}}}]}}"#)
        };
        let keys = r#""Keys":{"b":{"S":"!w"},"k":{"S":"/a"}}"#;
        let cases = [
            record("INSERT", &format!(r#"{{{keys}}}"#)),
            record("INSERT", &format!(r#"{{"SequenceNumber":"1",{keys}}}"#)),
            record(
                "INSERT",
                &format!(r#"{{"SequenceNumber":"1",{keys},"NewImage":{{"v":{{"B":"!"}}}}}}"#),
            ),
            record(
                "INSERT",
                &format!(r#"{{"SequenceNumber":"1",{keys},"NewImage":{{"n":{{"S":"?"}}}}}}"#),
            ),
            record("TOUCH", &format!(r#"{{"SequenceNumber":"1",{keys}}}"#)),
            record(
                "REMOVE",
                r#"{"SequenceNumber":"1","Keys":{"b":{"S":"!w"},"k":{"S":"a"}}}"#,
            ),
            record("REMOVE", r#"{"SequenceNumber":"1"}"#),
            String::from(r#"{"NextShardIterator":"x"}"#),
        ];
        for body in &cases {
            let result = read_records(body.as_bytes(), "!w", "", "");
            assert!(
                matches!(result, Err(Unreadable::Malformed(_))),
                "{body}: {result:?}"
            );
        }
        let Err(Unreadable::Malformed(detail)) = read_records(cases[2].as_bytes(), "!w", "", "")
        else {
            panic!("a value that is not base64");
        };
        assert!(detail.contains("sequence number 1"), "{detail}");
        // An image without a value (moto's key-only INSERT before an UpdateItem's image) is
        // read past, as another bucket's record is.
        let key_only = record(
            "INSERT",
            &format!(
                r#"{{"SequenceNumber":"1",{keys},"NewImage":{{"b":{{"S":"!w"}},"k":{{"S":"/a"}}}}}}"#
            ),
        );
        let page = read_records(key_only.as_bytes(), "!w", "", "").unwrap();
        assert_eq!((page.changes.len(), page.last.as_deref()), (0, Some("1")));
        // Out of order, or not after the position.
        let twice = r#"{"Records":[{"eventName":"REMOVE","dynamodb":{"SequenceNumber":"5","Keys":{"b":{"S":"!x"}}}}]}"#;
        assert!(read_records(twice.as_bytes(), "!w", "", "5").is_err());
        assert!(read_records(twice.as_bytes(), "!w", "", "4").is_ok());
        assert_eq!(
            read_records(b"<html>500</html>", "!w", "", ""),
            Err(Unreadable::Foreign)
        );
    }
}
