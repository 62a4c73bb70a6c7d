//! DynamoDB's error answers: `{"__type": "<namespace>#<Type>", "message": …}`.
//!
//! Fuzzed: [`error_of`] takes any bytes.

use alloc::string::String;

use super::json::{Answer, Loose, describe, object_text};

/// The type (after its namespace) and message of an error answer; empty when absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub kind: String,
    pub message: String,
}

/// Reads an error answer. A body that is not JSON is the message as it is; an object that
/// names a field twice (or has a field of DynamoDB's answers of the wrong type) is an
/// error: what it says is ambiguous.
pub fn error_of(body: &[u8]) -> Result<ServiceError, String> {
    let not_json = || ServiceError {
        kind: String::new(),
        message: String::from_utf8_lossy(body).into_owned(),
    };
    let Some(text) = object_text(body) else {
        // JSON, but not an object, says nothing; anything else is the message.
        let json = core::str::from_utf8(body)
            .is_ok_and(|text| serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok());
        return Ok(if json {
            ServiceError::default()
        } else {
            not_json()
        });
    };
    let answer = match serde_json::from_str::<Answer<'_>>(text) {
        Ok(answer) => answer,
        Err(e) if e.is_data() => return Err(describe(&e)),
        Err(_) => return Ok(not_json()),
    };
    let kind = answer
        .kind
        .as_str()
        .map(|t| t.rsplit('#').next().unwrap_or(t))
        .unwrap_or("");
    // dynalite and DynamoDB spell it `message`, some errors `Message`.
    let message = match answer.message {
        Loose::Absent => answer.capital_message,
        given => given,
    };
    Ok(ServiceError {
        kind: String::from(kind),
        message: String::from(message.as_str().unwrap_or("")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(error: &ServiceError) -> (&str, &str) {
        (error.kind.as_str(), error.message.as_str())
    }

    #[test]
    fn error_answers_name_their_type() {
        let error = error_of(
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
        )
        .unwrap();
        assert_eq!(
            pair(&error),
            ("ResourceNotFoundException", "Requested resource not found")
        );
        let error = error_of(b"<html>bad gateway</html>").unwrap();
        assert_eq!(pair(&error), ("", "<html>bad gateway</html>"));
    }

    #[test]
    fn error_fields_of_the_wrong_type_read_as_empty() {
        let error = error_of(br#"{"__type":"ValidationException","Message":"no"}"#).unwrap();
        assert_eq!(pair(&error), ("ValidationException", "no"));
        // `message` given, even as `null`, is the one read.
        let error = error_of(br#"{"__type":7,"message":null,"Message":"no"}"#).unwrap();
        assert_eq!(pair(&error), ("", ""));
        assert_eq!(pair(&error_of(b"[1]").unwrap()), ("", ""));
        assert_eq!(pair(&error_of(b"\"x\"").unwrap()), ("", ""));
        assert_eq!(
            pair(&error_of(b"{\"__type\":\xff}").unwrap()),
            ("", "{\"__type\":\u{fffd}}")
        );
    }

    #[test]
    fn an_error_naming_a_field_twice_is_refused() {
        let detail = error_of(
            br#"{"__type":"x#ConditionalCheckFailedException","__type":"x#ValidationException"}"#,
        )
        .unwrap_err();
        assert!(
            detail.starts_with("duplicate field `__type` at line 1 column"),
            "{detail}"
        );
    }
}
