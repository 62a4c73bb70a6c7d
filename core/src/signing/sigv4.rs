//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for requests sent in headers.
//!
//! The caller gives the request as it will go on the wire: its path already URI-encoded,
//! its query already in canonical order, and the headers to sign (which must include `host`
//! and `x-amz-date`, and `x-amz-security-token` with temporary credentials). The function
//! builds the canonical request and string to sign and returns the `Authorization` value.

use alloc::string::String;
use alloc::vec::Vec;

use super::{hex, hmac_sha256, sha256};
use crate::clock::Utc;

/// Long-term or temporary AWS credentials.
pub struct Credentials<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// One request, as it is sent.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, URI-encoded as on the wire (`/` for DynamoDB).
    pub path: &'a str,
    /// The query string in canonical order, or empty.
    pub query: &'a str,
    /// `(name, value)` pairs to sign; names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The `Authorization` header value for `request`, signed at `time` for `region` and
/// `service`.
pub fn authorization(
    credentials: &Credentials<'_>,
    region: &str,
    service: &str,
    time: &Utc,
    request: &Request<'_>,
) -> String {
    let date = time.basic_date();
    let scope = alloc::format!("{date}/{region}/{service}/aws4_request");
    let (canonical, signed_headers) = canonical_request(request);
    let string_to_sign = alloc::format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        time.basic_date_time(),
        hex(&sha256(canonical.as_bytes()))
    );
    let key = signing_key(credentials.secret_access_key, &date, region, service);
    let signature = hex(&hmac_sha256(&key, &[string_to_sign.as_bytes()]));
    alloc::format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

/// The key derived from the secret for one day, region and service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut secret_key = String::with_capacity(4 + secret.len());
    secret_key.push_str("AWS4");
    secret_key.push_str(secret);
    let k_date = hmac_sha256(secret_key.as_bytes(), &[date.as_bytes()]);
    let k_region = hmac_sha256(&k_date, &[region.as_bytes()]);
    let k_service = hmac_sha256(&k_region, &[service.as_bytes()]);
    hmac_sha256(&k_service, &[b"aws4_request"])
}

/// The canonical request and its `SignedHeaders` list.
fn canonical_request(request: &Request<'_>) -> (String, String) {
    // Lower-case names, sorted; the values of a repeated header joined by commas in the
    // order given; each value trimmed with inner runs of spaces collapsed.
    let mut headers: Vec<(String, String)> = Vec::with_capacity(request.headers.len());
    for (name, value) in request.headers {
        let name = name.to_ascii_lowercase();
        let value = collapse_spaces(value);
        match headers.iter_mut().find(|(n, _)| *n == name) {
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
    let signed = signed.join(";");
    let mut out = String::new();
    out.push_str(request.method);
    out.push('\n');
    out.push_str(if request.path.is_empty() {
        "/"
    } else {
        request.path
    });
    out.push('\n');
    out.push_str(request.query);
    out.push('\n');
    for (name, value) in &headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed);
    out.push('\n');
    out.push_str(&hex(&sha256(request.body)));
    (out, signed)
}

fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    //! Cases of AWS's published Signature Version 4 test suite (credentials `AKIDEXAMPLE`,
    //! 2015-08-30T12:36:00Z, us-east-1), and the IAM `ListUsers` walk-through of AWS's
    //! signing documentation, re-typed as facts. A DynamoDB-shaped request with a session
    //! token was cross-checked with botocore's `SigV4Auth`.

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const HOST: &str = "example.amazonaws.com";
    const DATE: &str = "20150830T123600Z";

    fn sign(
        service: &str,
        method: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> String {
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
        };
        let request = Request {
            method,
            path: "/",
            query,
            headers,
            body: body.as_bytes(),
        };
        authorization(
            &credentials,
            "us-east-1",
            service,
            &Utc::from_unix(1_440_938_160),
            &request,
        )
    }

    fn expected(service: &str, signed: &str, signature: &str) -> String {
        alloc::format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, SignedHeaders={signed}, Signature={signature}"
        )
    }

    #[test]
    fn the_published_test_suite_cases() {
        let vanilla = [("Host", HOST), ("X-Amz-Date", DATE)];
        assert_eq!(
            sign("service", "GET", "", &vanilla, ""),
            expected(
                "service",
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(
            sign("service", "POST", "", &vanilla, ""),
            expected(
                "service",
                "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
            )
        );
        assert_eq!(
            sign("service", "POST", "Param1=value1", &vanilla, ""),
            expected(
                "service",
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
            )
        );
        // post-header-key-sort: a third header sorts between the two.
        assert_eq!(
            sign(
                "service",
                "POST",
                "",
                &[
                    ("Host", HOST),
                    ("My-Header1", "value1"),
                    ("X-Amz-Date", DATE)
                ],
                ""
            ),
            expected(
                "service",
                "host;my-header1;x-amz-date",
                "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"
            )
        );
        // post-x-www-form-urlencoded: the body is hashed.
        assert_eq!(
            sign(
                "service",
                "POST",
                "",
                &[
                    ("Content-Type", "application/x-www-form-urlencoded"),
                    ("Host", HOST),
                    ("X-Amz-Date", DATE)
                ],
                "Param1=value1"
            ),
            expected(
                "service",
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
        // get-header-value-trim: values trimmed, inner spaces collapsed.
        assert_eq!(
            sign(
                "service",
                "GET",
                "",
                &[
                    ("Host", HOST),
                    ("My-Header1", " value1"),
                    ("My-Header2", " \"a   b   c\""),
                    ("X-Amz-Date", DATE)
                ],
                ""
            ),
            expected(
                "service",
                "host;my-header1;my-header2;x-amz-date",
                "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
            )
        );
    }

    #[test]
    fn the_iam_walk_through_of_the_documentation() {
        let headers = [
            (
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("Host", "iam.amazonaws.com"),
            ("X-Amz-Date", DATE),
        ];
        let request = Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &headers,
            body: b"",
        };
        let (canonical, _) = canonical_request(&request);
        assert_eq!(
            hex(&sha256(canonical.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        assert_eq!(
            hex(&signing_key(SECRET, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        assert_eq!(
            sign(
                "iam",
                "GET",
                "Action=ListUsers&Version=2010-05-08",
                &headers,
                ""
            ),
            expected(
                "iam",
                "content-type;host;x-amz-date",
                "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
            )
        );
    }

    #[test]
    fn a_dynamodb_request_with_a_session_token_as_botocore_signs_it() {
        let headers = [
            ("content-type", "application/x-amz-json-1.0"),
            ("host", "127.0.0.1:4567"),
            ("x-amz-date", DATE),
            (
                "x-amz-security-token",
                "FQoGZXIvYXdzEBYaDkiOGi-session-token",
            ),
            ("x-amz-target", "DynamoDB_20120810.GetItem"),
        ];
        let credentials = Credentials {
            access_key_id: "AKIDEXAMPLE",
            secret_access_key: SECRET,
        };
        let request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: br#"{"TableName":"kvplug","Key":{"b":{"S":"default"},"k":{"S":"k"}},"ConsistentRead":true}"#,
        };
        let header = authorization(
            &credentials,
            "eu-west-1",
            "dynamodb",
            &Utc::from_unix(1_440_938_160),
            &request,
        );
        assert!(header.ends_with(
            "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target, Signature=905265c7535d79ebc9d81026bc469df5a767125e58286df73dba7bc691e1959d"
        ), "{header}");
    }
}
