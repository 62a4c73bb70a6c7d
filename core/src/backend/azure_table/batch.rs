//! Entity group transactions (`$batch`): one changeset per request, all rows in one
//! partition, atomic; the multipart body, the reader of its answer, and the deletes that
//! go on past rows found absent.
//!
//! Fuzzed: [`batch_outcome`] takes any bytes.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use super::errors::{ServiceError, service_error};
use super::{ACCEPT, JSON, TableBackend};
use crate::backend::chunks;
use crate::backend::retry::Repeat;
use crate::client::Verb;
use crate::error::Error;

/// Operations per entity group transaction.
pub const MAX_BATCH_OPS: usize = 100;
/// A batch request's payload may be 4 MiB; what is left after the framing goes to parts.
pub const MAX_BATCH_BYTES: usize = (4 << 20) - 1024;
/// Multipart boundaries. No part can contain them at a line start: escaped keys hold no
/// control characters, so the URLs and JSON of an operation hold no line break at all.
const BATCH_BOUNDARY: &str = "batch_kvplug";
const CHANGESET_BOUNDARY: &str = "changeset_kvplug";

/// One operation's answer inside a batch response.
#[derive(Debug, PartialEq, Eq)]
pub struct OpAnswer {
    pub status: u16,
    pub error: ServiceError,
}

/// How a batch request went.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchOutcome {
    Done,
    /// The changeset was rolled back; `index` is the failing operation when the service
    /// named it.
    Failed {
        index: Option<usize>,
        answer: OpAnswer,
    },
}

/// One operation of a batch: which entry it came from, and its text.
pub struct Part<'a> {
    pub key: &'a str,
    pub row: String,
    pub text: String,
}

impl TableBackend {
    /// One operation of a changeset, as its part of the multipart body.
    pub(super) fn batch_part(&self, verb: Verb, row: &str, entity: Option<&str>) -> String {
        let mut out = String::with_capacity(entity.map_or(0, str::len) + row.len() * 3 + 320);
        let _ = write!(
            out,
            "--{CHANGESET_BOUNDARY}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{} {}",
            verb.name(),
            self.inner.base_url
        );
        out.push_str(&self.entity_path(row));
        out.push_str(" HTTP/1.1\r\nAccept: ");
        out.push_str(ACCEPT);
        out.push_str("\r\nDataServiceVersion: 3.0\r\n");
        match entity {
            Some(json) => {
                let _ = write!(
                    out,
                    "Content-Type: {JSON}\r\nContent-Length: {}\r\n\r\n{json}\r\n",
                    json.len()
                );
            }
            None => out.push_str("If-Match: *\r\n\r\n"),
        }
        out
    }

    /// Sends `parts` as one changeset and reads what became of it.
    fn send_batch(&self, parts: &[&Part<'_>]) -> Result<BatchOutcome, Error> {
        const PATH: &str = "/$batch";
        let mut body =
            String::with_capacity(parts.iter().map(|p| p.text.len()).sum::<usize>() + 256);
        let _ = write!(
            body,
            "--{BATCH_BOUNDARY}\r\nContent-Type: multipart/mixed; boundary={CHANGESET_BOUNDARY}\r\n\r\n"
        );
        for part in parts {
            body.push_str(&part.text);
        }
        let _ = write!(body, "--{CHANGESET_BOUNDARY}--\r\n--{BATCH_BOUNDARY}--\r\n");
        let content_type = format!("multipart/mixed; boundary={BATCH_BOUNDARY}");
        // Every operation is an unconditional replace or an `If-Match: *` delete: sending the
        // changeset again leaves the same rows behind.
        let response = self.send(
            Verb::Post,
            PATH,
            &[],
            Some(&content_type),
            body.as_bytes(),
            Repeat::Always,
        )?;
        if response.status != 202 {
            return Err(self.failure(Verb::Post, PATH, &response));
        }
        batch_outcome(&response.body, parts.len())
            .map_err(|e| self.client().malformed(Verb::Post, PATH, e))
    }

    /// The error for a changeset's failed operation.
    fn batch_failure(&self, what: &str, part: Option<&Part<'_>>, answer: &OpAnswer) -> Error {
        if answer.status == 404 && answer.error.code.as_deref() == Some("TableNotFound") {
            return Error::NoSuchStore;
        }
        let which = match part {
            Some(part) => format!("{what} of `{}`", part.key),
            None => format!("{what} (the service did not say which operation)"),
        };
        let reason = format!("{which}: {}", answer.error.reason());
        self.client()
            .status_with(Verb::Post, "/$batch", answer.status, &reason)
    }

    /// Sends `parts` in changesets within the service's limits.
    pub(super) fn write_batches(&self, parts: &[Part<'_>], what: &str) -> Result<(), Error> {
        for chunk in chunks(parts, MAX_BATCH_OPS, MAX_BATCH_BYTES, |p| p.text.len()) {
            let pending: Vec<&Part<'_>> = chunk.iter().collect();
            if let BatchOutcome::Failed { index, answer } = self.send_batch(&pending)? {
                let part = index.and_then(|i| pending.get(i).copied());
                return Err(self.batch_failure(what, part, &answer));
            }
        }
        Ok(())
    }

    /// Deletes the rows of one changeset. A changeset fails as a whole when one row is
    /// absent, and the service names that row (operations run in order, so the rows before
    /// it were present): it is dropped and the rest sent again. After the second absent row
    /// the rows not known to be present are looked up first, one query per 14 rows, so that
    /// a chunk costs at most 3 requests plus one per 14 rows however many are absent.
    pub(super) fn delete_chunk(&self, chunk: &[Part<'_>]) -> Result<(), Error> {
        let mut pending: Vec<&Part<'_>> = chunk.iter().collect();
        let mut absent_seen = 0;
        let mut looked_up = false;
        // Each round but the lookup removes at least one row, or ends.
        for _ in 0..=chunk.len() + 1 {
            if pending.is_empty() {
                return Ok(());
            }
            let (index, answer) = match self.send_batch(&pending)? {
                BatchOutcome::Done => return Ok(()),
                BatchOutcome::Failed { index, answer } => (index, answer),
            };
            let missing_row =
                answer.status == 404 && answer.error.code.as_deref() != Some("TableNotFound");
            if !missing_row {
                let failed = index.and_then(|i| pending.get(i).copied());
                return Err(self.batch_failure("delete-many", failed, &answer));
            }
            let known_present = match index.filter(|i| *i < pending.len()) {
                Some(i) => {
                    pending.remove(i);
                    absent_seen += 1;
                    i
                }
                None if looked_up => {
                    return Err(self.batch_failure("delete-many", None, &answer));
                }
                None => {
                    absent_seen = 2;
                    0
                }
            };
            if absent_seen >= 2 && !looked_up {
                let unknown = pending.split_off(known_present.min(pending.len()));
                let rows: Vec<&str> = unknown.iter().map(|p| p.row.as_str()).collect();
                let present = self.existing(&rows)?;
                pending.extend(
                    unknown
                        .into_iter()
                        .filter(|p| present.contains(&p.row.as_str())),
                );
                looked_up = true;
            }
        }
        Err(Error::GaveUp(String::from(
            "delete-many: rows kept disappearing between attempts of one changeset",
        )))
    }
}

/// Reads a `$batch` answer: each operation's status line, and the error of a failed one.
/// A failed changeset answers with the one failing operation, its message led by its
/// index (`1:The specified resource does not exist.`).
pub fn batch_outcome(body: &[u8], operations: usize) -> Result<BatchOutcome, String> {
    let text = core::str::from_utf8(body)
        .map_err(|_| String::from("a batch response that is not UTF-8"))?;
    let mut answers: Vec<OpAnswer> = Vec::new();
    let mut lines = text.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some(status_line) = line.strip_prefix("HTTP/1.1 ") else {
            continue;
        };
        let status = status_line
            .get(..3)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| String::from("an operation status that is not a number"))?;
        // Headers up to a blank line, then the body up to the next boundary.
        for header in lines.by_ref() {
            if header.is_empty() {
                break;
            }
        }
        let mut body = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with("--") {
                break;
            }
            body.push_str(next);
            lines.next();
        }
        answers.push(OpAnswer {
            status,
            error: service_error(body.as_bytes())?,
        });
    }
    match answers.iter().position(|a| !(200..300).contains(&a.status)) {
        None if answers.len() == operations => Ok(BatchOutcome::Done),
        None => Err(String::from(
            "a batch answer with a different number of operations",
        )),
        Some(failed) => {
            let mut answer = answers.swap_remove(failed);
            let indexed = answer.error.message.as_deref().and_then(|message| {
                let (index, rest) = message.split_once(':')?;
                Some((
                    index.trim().parse::<usize>().ok()?,
                    String::from(rest.trim()),
                ))
            });
            let index = indexed.map(|(index, rest)| {
                answer.error.message = Some(rest);
                index
            });
            Ok(BatchOutcome::Failed { index, answer })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_answers_are_read_per_operation() {
        let ok = "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_x\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 204 No Content\r\nDataServiceVersion: 3.0;\r\nETag: W/\"datetime'1'\"\r\n\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 204 No Content\r\nDataServiceVersion: 3.0;\r\n\r\n\r\n\
            --changesetresponse_x--\r\n--batchresponse_x--\r\n";
        assert_eq!(batch_outcome(ok.as_bytes(), 2), Ok(BatchOutcome::Done));
        assert!(batch_outcome(ok.as_bytes(), 3).is_err());
        let failed = "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_x\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 404 Not Found\r\nContent-ID: 2\r\nContent-Type: application/json;odata=minimalmetadata;charset=utf-8\r\n\r\n\
            {\"odata.error\":{\"code\":\"ResourceNotFound\",\"message\":{\"lang\":\"en-US\",\"value\":\"1:The specified resource does not exist.\\nRequestId:23\"}}}\r\n\
            --changesetresponse_x--\r\n--batchresponse_x--\r\n";
        assert_eq!(
            batch_outcome(failed.as_bytes(), 3),
            Ok(BatchOutcome::Failed {
                index: Some(1),
                answer: OpAnswer {
                    status: 404,
                    error: ServiceError {
                        code: Some(String::from("ResourceNotFound")),
                        message: Some(String::from("The specified resource does not exist.")),
                    },
                },
            })
        );
    }

    #[test]
    fn a_batch_answer_whose_error_names_a_field_twice_is_refused() {
        let failed = "--batchresponse_x\r\nContent-Type: multipart/mixed; boundary=changesetresponse_x\r\n\r\n\
            --changesetresponse_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
            HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n\
            {\"odata.error\":{\"code\":\"ResourceNotFound\",\"code\":\"TableNotFound\"}}\r\n\
            --changesetresponse_x--\r\n--batchresponse_x--\r\n";
        let detail = batch_outcome(failed.as_bytes(), 1).unwrap_err();
        assert!(detail.starts_with("duplicate field `code`"), "{detail}");
        assert_eq!(
            batch_outcome(b"HTTP/1.1 204\xff", 1),
            Err(String::from("a batch response that is not UTF-8"))
        );
        assert_eq!(
            batch_outcome(b"HTTP/1.1 2x4 No Content\r\n", 1),
            Err(String::from("an operation status that is not a number"))
        );
    }
}
