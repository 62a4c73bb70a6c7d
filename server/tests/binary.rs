//! The `kvplug-server` command, as users run it: it binds loopback, keeps every acknowledged
//! write across a hard kill, and answers malformed requests with a clear 4xx.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::request;

struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &std::path::Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvplug-server"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start kvplug-server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "binds loopback by default: {addr}"
    );
    Running { child, addr }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn acknowledged_writes_survive_a_hard_kill() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    for i in 0..50 {
        let (status, _, _) = request(
            &server.addr,
            &format!("PUT /v1/buckets/b/keys/k{i} HTTP/1.1"),
            format!("v{i}").as_bytes(),
        );
        assert_eq!(status, 204);
    }
    let (status, _, body) = request(
        &server.addr,
        "POST /v1/buckets/b/keys/n?increment=7 HTTP/1.1",
        b"",
    );
    assert_eq!((status, body.as_slice()), (200, &b"7"[..]));
    drop(server); // SIGKILL: no shutdown path runs.

    let server = start(data.path(), &[]);
    for i in 0..50 {
        let (status, _, body) = request(
            &server.addr,
            &format!("GET /v1/buckets/b/keys/k{i} HTTP/1.1"),
            b"",
        );
        assert_eq!((status, body), (200, format!("v{i}").into_bytes()));
    }
    let (_, _, body) = request(
        &server.addr,
        "POST /v1/buckets/b/keys/n?increment=1 HTTP/1.1",
        b"",
    );
    assert_eq!(body, b"8");
}

#[test]
fn malformed_requests_get_a_clear_4xx() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    let cases: &[(&str, &[u8], u16, &str)] = &[
        ("GET /v1/buckets/a.b/keys/k HTTP/1.1", b"", 400, "bad-name"),
        ("GET /v1/buckets/b/keys/%zz HTTP/1.1", b"", 400, "bad-name"),
        ("GET /v1/buckets/b/keys/%FF HTTP/1.1", b"", 400, "bad-name"),
        (
            "GET /v1/buckets/b?cursor=%%% HTTP/1.1",
            b"",
            400,
            "bad-cursor",
        ),
        (
            "GET /v1/buckets/b?limit=0 HTTP/1.1",
            b"",
            400,
            "bad-request",
        ),
        (
            "POST /v1/buckets/b/keys/k?increment=1.5 HTTP/1.1",
            b"",
            400,
            "bad-request",
        ),
        (
            "POST /v1/buckets/b/keys/k HTTP/1.1",
            b"",
            400,
            "bad-request",
        ),
        (
            "PUT /v1/buckets/b/keys/k HTTP/1.1\r\nif-match: nonsense",
            b"v",
            400,
            "bad-request",
        ),
        (
            "POST /v1/buckets/b/set-many HTTP/1.1",
            &[0, 0, 0, 9, b'k'],
            400,
            "bad-frames",
        ),
        (
            "POST /v1/buckets/b/get-many HTTP/1.1",
            &[0, 0, 0, 1, 0xff],
            400,
            "bad-frames",
        ),
        (
            "PATCH /v1/buckets/b/keys/k HTTP/1.1",
            b"",
            405,
            "method-not-allowed",
        ),
        (
            "GET /v1/buckets/b/nothing-here HTTP/1.1",
            b"",
            404,
            "not-found",
        ),
        ("GET /elsewhere HTTP/1.1", b"", 404, "not-found"),
        (
            "GET /v1/buckets/b/keys/missing HTTP/1.1",
            b"",
            404,
            "no-such-key",
        ),
    ];
    for (head, body, status, code) in cases {
        let (got, headers, text) = request(&server.addr, head, body);
        assert_eq!(
            (got, header(&headers, "kvplug-error")),
            (*status, Some(*code)),
            "{head}: {}",
            String::from_utf8_lossy(&text)
        );
        // Errors too: a client recognises the protocol's answers by this header.
        assert_eq!(header(&headers, "kvplug-protocol"), Some("1"), "{head}");
    }
    // A malformed batch changed nothing.
    let (_, _, body) = request(&server.addr, "GET /v1/buckets/b HTTP/1.1", b"");
    assert!(body.is_empty());
}

#[test]
fn every_answer_carries_the_protocol_header() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    for (head, body, status) in [
        ("PUT /v1/buckets/b/keys/k HTTP/1.1", &b"v"[..], 204),
        ("GET /v1/buckets/b/keys/k HTTP/1.1", b"", 200),
        ("HEAD /v1/buckets/b HTTP/1.1", b"", 204),
        ("GET /v1/buckets/b HTTP/1.1", b"", 200),
        ("POST /v1/buckets/b/delete-many HTTP/1.1", b"", 204),
        ("GET /healthz HTTP/1.1", b"", 200),
    ] {
        let (got, headers, _) = request(&server.addr, head, body);
        assert_eq!(
            (got, header(&headers, "kvplug-protocol")),
            (status, Some("1")),
            "{head}"
        );
    }
}

#[test]
fn names_past_the_protocol_limits_are_refused_in_paths_and_batches() {
    let data = tempfile::tempdir().unwrap();
    let server = start(data.path(), &[]);
    let longest = "k".repeat(8192);
    let (status, _, _) = request(
        &server.addr,
        &format!("PUT /v1/buckets/b/keys/{longest} HTTP/1.1"),
        b"v",
    );
    assert_eq!(status, 204);
    let frame = |bytes: &[u8]| {
        let mut out = u32::try_from(bytes.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    };
    let too_long = "k".repeat(8193);
    let mut set_many = frame(b"first");
    set_many.extend(frame(b"v"));
    set_many.extend(frame(too_long.as_bytes()));
    set_many.extend(frame(b"v"));
    for (head, body) in [
        (
            format!("GET /v1/buckets/b/keys/{too_long} HTTP/1.1"),
            vec![],
        ),
        (
            format!("PUT /v1/buckets/b/keys/{too_long} HTTP/1.1"),
            vec![1],
        ),
        (
            format!("HEAD /v1/buckets/{} HTTP/1.1", "b".repeat(1025)),
            vec![],
        ),
        ("POST /v1/buckets/b/set-many HTTP/1.1".to_owned(), set_many),
        (
            "POST /v1/buckets/b/delete-many HTTP/1.1".to_owned(),
            frame(too_long.as_bytes()),
        ),
    ] {
        let (status, headers, text) = request(&server.addr, &head, &body);
        assert_eq!(
            (status, header(&headers, "kvplug-error")),
            (400, Some("bad-name")),
            "{}",
            head.get(..40).unwrap()
        );
        if !head.starts_with("HEAD") {
            let text = String::from_utf8_lossy(&text);
            assert!(text.contains("at most"), "{text}");
        }
    }
    // The refused batch wrote nothing, not even the entry before the long key.
    let (status, _, _) = request(&server.addr, "GET /v1/buckets/b/keys/first HTTP/1.1", b"");
    assert_eq!(status, 404);
}

#[test]
fn a_token_and_a_bucket_list_are_enforced() {
    let data = tempfile::tempdir().unwrap();
    let token = data.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    let server = start(
        data.path(),
        &["--token-file", token.to_str().unwrap(), "--bucket", "only"],
    );
    let (status, headers, _) = request(&server.addr, "HEAD /v1/buckets/only HTTP/1.1", b"");
    assert_eq!(
        (status, header(&headers, "www-authenticate")),
        (401, Some("Bearer"))
    );
    let (status, _, _) = request(
        &server.addr,
        "HEAD /v1/buckets/only HTTP/1.1\r\nauthorization: Bearer tok-12",
        b"",
    );
    assert_eq!(status, 403);
    let (status, _, _) = request(
        &server.addr,
        "HEAD /v1/buckets/only HTTP/1.1\r\nauthorization: Bearer tok-123",
        b"",
    );
    assert_eq!(status, 204);
    let (status, headers, _) = request(
        &server.addr,
        "HEAD /v1/buckets/other HTTP/1.1\r\nauthorization: Bearer tok-123",
        b"",
    );
    assert_eq!(
        (status, header(&headers, "kvplug-error")),
        (404, Some("no-such-bucket"))
    );
}

#[test]
fn bad_command_lines_fail_with_usage() {
    let output = Command::new(env!("CARGO_BIN_EXE_kvplug-server"))
        .arg("--nope")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown argument `--nope`"));
}
