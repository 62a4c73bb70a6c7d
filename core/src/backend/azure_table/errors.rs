//! The Table service's error answers: `{"odata.error": {"code": …, "message": {"value": …}}}`,
//! or the flat `code`/`message` some front ends send.
//!
//! Fuzzed: [`service_error`] takes any bytes.

use alloc::format;
use alloc::string::String;

use serde::Deserialize;

use super::TableBackend;
use super::odata::{Ignored, Json, describe};
use crate::client::{Response, Verb};
use crate::error::Error;

/// The error code and message of a failed request's JSON body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ServiceError {
    /// `code: message`, or whichever the service gave.
    pub fn reason(&self) -> String {
        match (&self.code, &self.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(text), None) | (None, Some(text)) => text.clone(),
            (None, None) => String::new(),
        }
    }
}

/// Fields are read leniently, as the reason of an error: of the wrong type, absent.
#[derive(Debug, Deserialize)]
struct ErrorAnswer<'a> {
    /// When present, whatever its type, the error is this and not the flat fields.
    #[serde(borrow, default, rename = "odata.error")]
    odata: Json<'a, ErrorFields<'a>>,
    #[serde(borrow, default)]
    code: Json<'a, Ignored>,
    #[serde(borrow, default)]
    message: Json<'a, Message<'a>>,
}

#[derive(Debug, Deserialize)]
struct ErrorFields<'a> {
    #[serde(borrow, default)]
    code: Json<'a, Ignored>,
    /// A string, or an object holding it as `value`.
    #[serde(borrow, default)]
    message: Json<'a, Message<'a>>,
}

#[derive(Debug, Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    value: Json<'a, Ignored>,
}

/// The code and the first line of the message of an error body; both absent when the body
/// is not a JSON object. A body that names a field twice is an error.
pub fn service_error(body: &[u8]) -> Result<ServiceError, String> {
    let Ok(text) = core::str::from_utf8(body) else {
        return Ok(ServiceError::default());
    };
    let answer = match serde_json::from_str::<Json<'_, ErrorAnswer<'_>>>(text) {
        Ok(Json::Object(answer)) => answer,
        Ok(_) => return Ok(ServiceError::default()),
        Err(e) if e.is_data() => return Err(describe(&e)),
        Err(_) => return Ok(ServiceError::default()),
    };
    let (code, message) = match answer.odata {
        Json::Absent => (answer.code, answer.message),
        Json::Object(fields) => (fields.code, fields.message),
        _ => return Ok(ServiceError::default()),
    };
    let message = match &message {
        Json::Object(nested) => nested.value.as_str(),
        other => other.as_str(),
    };
    Ok(ServiceError {
        code: code.as_str().map(String::from),
        message: message.map(|m| String::from(m.lines().next().unwrap_or_default().trim())),
    })
}

impl TableBackend {
    /// The code and message of an error answer; a body naming a field twice is malformed.
    pub(super) fn service_error(
        &self,
        verb: Verb,
        path: &str,
        body: &[u8],
    ) -> Result<ServiceError, Error> {
        service_error(body).map_err(|e| self.client().malformed(verb, path, e))
    }

    /// The error for an answer the operation cannot accept; a missing table is
    /// `no-such-store`.
    pub(super) fn failure(&self, verb: Verb, path: &str, response: &Response) -> Error {
        let error = match self.service_error(verb, path, &response.body) {
            Ok(error) => error,
            Err(malformed) => return malformed,
        };
        if response.status == 404 && error.code.as_deref() == Some("TableNotFound") {
            return Error::NoSuchStore;
        }
        let reason = if error.code.is_none() && error.message.is_none() {
            String::from_utf8_lossy(&response.body).into_owned()
        } else {
            error.reason()
        };
        self.client()
            .status_with(verb, path, response.status, &reason)
    }

    /// Whether `response` is a 404 for the row (not for the table).
    pub(super) fn row_missing(
        &self,
        verb: Verb,
        path: &str,
        response: &Response,
    ) -> Result<bool, Error> {
        Ok(response.status == 404
            && self
                .service_error(verb, path, &response.body)?
                .code
                .as_deref()
                != Some("TableNotFound"))
    }
}

/// Throttling, or a timeout inside the service: worth another try later.
pub fn busy(response: &Response) -> Result<bool, String> {
    Ok(match response.status {
        503 => true,
        500 => service_error(&response.body)?.code.as_deref() == Some("OperationTimedOut"),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_errors_give_code_and_first_line() {
        let body = br#"{"odata.error":{"code":"TableNotFound","message":{"lang":"en-US","value":"The table specified does not exist.\nRequestId:9b46"}}}"#;
        let error = service_error(body).unwrap();
        assert_eq!(error.code.as_deref(), Some("TableNotFound"));
        assert_eq!(
            error.reason(),
            "TableNotFound: The table specified does not exist."
        );
        let flat = service_error(br#"{"code":"Forbidden","message":"no"}"#).unwrap();
        assert_eq!(flat.reason(), "Forbidden: no");
        assert_eq!(service_error(b"<html>").unwrap().reason(), "");
    }

    #[test]
    fn error_fields_of_the_wrong_shape_read_as_absent() {
        for body in [
            &br#"{"odata.error":null,"code":"Flat"}"#[..],
            br#"{"odata.error":"x","code":"Flat"}"#,
            br#"{"code":7,"message":{"lang":"en-US"}}"#,
            br#"{"message":["no"]}"#,
            b"[]",
            b"\"TableNotFound\"",
            b"{\"code\":\"\xff\"}",
        ] {
            assert_eq!(
                service_error(body),
                Ok(ServiceError::default()),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let nested = service_error(br#"{"odata.error":{"message":"plain"}}"#).unwrap();
        assert_eq!(nested.reason(), "plain");
    }

    #[test]
    fn an_error_naming_a_field_twice_is_refused() {
        for body in [
            &br#"{"odata.error":{"code":"TableNotFound","code":"EntityAlreadyExists"}}"#[..],
            br#"{"odata.error":{},"odata.error":{}}"#,
            br#"{"odata.error":{"message":{"value":"a","value":"b"}}}"#,
            br#"{"code":"a","code":"b"}"#,
        ] {
            let detail = service_error(body).unwrap_err();
            assert!(detail.starts_with("duplicate field"), "{detail}");
        }
    }

    #[test]
    fn an_error_answer_naming_a_field_twice_is_malformed_naming_the_request() {
        let b = crate::backend::azure_table::tests::backend("b");
        let path = b.entity_path("k");
        let body = br#"{"odata.error":{"code":"TableNotFound","code":"ResourceNotFound"}}"#;
        let error = b.service_error(Verb::Get, &path, body).unwrap_err();
        let Error::Malformed {
            method,
            path: target,
            detail,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(
            (*method, target.as_str()),
            (
                "GET",
                "/devstoreaccount1/kvplug(PartitionKey='%21b',RowKey='k')"
            )
        );
        assert!(
            detail.starts_with("duplicate field `code` at line 1 column "),
            "{detail}"
        );
        assert!(
            error.to_string().starts_with(
                "GET /devstoreaccount1/kvplug(PartitionKey='%21b',RowKey='k'): malformed response: duplicate field `code`"
            ),
            "{error}"
        );
    }
}
