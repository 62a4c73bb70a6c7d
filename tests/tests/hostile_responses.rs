//! A service that answers with far more than the operation asked for: the adapter refuses it
//! with an error that names the request, never traps, and holds no more memory than the
//! operation could legitimately need. Each case runs on a fresh adapter instance whose memory
//! the host caps at 128 MiB (as `wasmtime run -W max-memory-size=134217728` would), and the
//! bound is checked on the instance's linear memory, which never shrinks, so it is the peak.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use kvplug_tests::fault_server::{Action, FaultServer, chunked_head};
use kvplug_tests::services::{self, Secrets};
use kvplug_tests::{Kv, adapter, other_message};

const CAP: usize = 128 << 20;
const MIB: usize = 1 << 20;

/// Short credentials (a service's text is withheld), each backend taking those of its kind.
const SECRETS: Secrets = Secrets {
    token: None,
    aws_secret: "secret",
    session_token: None,
    account_key: "c2VjcmV0",
};

fn backend_settings(backend: &str, url: &str) -> kvplug_runner::Settings {
    (services::expectations(backend).fault_settings)(url, &SECRETS)
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Get,
    Delete,
}

/// Whether `backend` can legitimately receive a value as large as the host allows for `op`:
/// a `get` on a store whose values have no fixed limit (kvplug-server, etcd, Redis). Then
/// only the host's cap bounds what is read, and the promise is an error, not a trap.
fn unbounded(backend: &str, op: Op) -> bool {
    matches!(op, Op::Get) && services::value_limit(backend).is_none()
}

/// Runs `op` against a server answering every request with `answer`, and returns the
/// message and the bytes of linear memory the call added.
async fn drive(backend: &str, op: Op, answer: fn() -> Action) -> (String, usize) {
    let fault = FaultServer::start(move |_| answer());
    let mut kv = Kv::capped(
        adapter(backend),
        backend_settings(backend, &fault.url()),
        CAP,
    )
    .await;
    let b = kv.open("b").await.unwrap();
    let before = kv.linear_memory();
    let error = match op {
        Op::Get => kv.get(b, "k").await.map(drop),
        Op::Delete => kv.delete(b, "k").await,
    };
    let message = other_message(error.expect_err("a hostile answer must be an error"));
    let grown = kv.linear_memory() - before;
    (message, grown)
}

/// The message names the request: `kvplug: <METHOD> /<path>…`.
fn names_the_request(message: &str) -> bool {
    let Some(rest) = message.strip_prefix("kvplug: ") else {
        return false;
    };
    ["GET /", "HEAD /", "PUT /", "POST /", "DELETE /"]
        .iter()
        .any(|start| rest.starts_with(start))
}

fn json_zeros() -> Action {
    // `[0,0,…,0]`: 200 MB.
    Action::Repeat {
        head: chunked_head(200, services::marks()),
        start: b"[".to_vec(),
        piece: b"0,".to_vec(),
        times: 100_000_000,
        end: b"0]".to_vec(),
    }
}

fn endless() -> Action {
    Action::Endless {
        head: chunked_head(200, services::marks()),
    }
}

fn huge_declared_length() -> Action {
    let mut raw = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n", 1_u64 << 40);
    for mark in services::marks() {
        raw.push_str(mark);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n{}");
    Action::Raw(raw.into_bytes())
}

fn huge_headers() -> Action {
    // 100 MB of headers, 1,000 bytes each.
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    for mark in services::marks() {
        head.push_str(mark);
        head.push_str("\r\n");
    }
    Action::Repeat {
        head: head.into_bytes(),
        start: Vec::new(),
        piece: format!("x-padding: {}\r\n", "p".repeat(987)).into_bytes(),
        times: 100_000,
        end: Vec::new(),
    }
}

/// Checks one case on every backend and op; `bound` is the most the call may add to the
/// adapter's memory when the operation's own cap applies (at most 2 MiB here: an answer is
/// held once, in a buffer that grows in place, so the bound is the cap and a little).
async fn refused_everywhere(name: &str, answer: fn() -> Action, bound: usize) {
    for backend in services::backends().iter().map(|b| b.name) {
        for op in [Op::Get, Op::Delete] {
            let (message, grown) = drive(backend, op, answer).await;
            eprintln!("{name}: {backend} {op:?}: grew {grown} bytes: {message}");
            assert!(
                names_the_request(&message),
                "{name}: {backend} {op:?}: {message}"
            );
            let limit = if unbounded(backend, op) { CAP } else { bound };
            assert!(
                grown <= limit,
                "{name}: {backend} {op:?}: grew {grown} bytes, over {limit}: {message}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_200_mb_json_array_is_refused_within_the_operations_cap() {
    refused_everywhere("200 MB JSON", json_zeros, 3 * MIB).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_never_ending_body_is_refused_within_the_operations_cap() {
    refused_everywhere("endless 200", endless, 3 * MIB).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_content_length_of_2_to_the_40_is_refused_before_a_byte_is_read() {
    for backend in services::backends().iter().map(|b| b.name) {
        for op in [Op::Get, Op::Delete] {
            let (message, grown) = drive(backend, op, huge_declared_length).await;
            assert!(
                names_the_request(&message) && message.contains("response body larger than"),
                "{backend} {op:?}: {message}"
            );
            assert!(grown < MIB, "{backend} {op:?}: grew {grown} bytes");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mb_header_block_is_refused_by_the_host_and_costs_the_adapter_nothing() {
    for backend in services::backends().iter().map(|b| b.name) {
        let (message, grown) = drive(backend, Op::Get, huge_headers).await;
        assert!(
            names_the_request(&message) && message.contains("no valid HTTP answer"),
            "{backend}: {message}"
        );
        assert!(grown < MIB, "{backend}: grew {grown} bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resp_array_of_a_million_empty_strings_is_refused_before_it_is_built() {
    fn million() -> Action {
        Action::Repeat {
            head: chunked_head(200, &[]),
            start: b"*1000000\r\n".to_vec(),
            piece: b"$0\r\n\r\n".to_vec(),
            times: 1_000_000,
            end: Vec::new(),
        }
    }
    for op in [Op::Get, Op::Delete] {
        let (message, grown) = drive("redis", op, million).await;
        eprintln!("RESP million: {op:?}: grew {grown} bytes: {message}");
        assert!(names_the_request(&message), "{op:?}: {message}");
        // `get` reads the 6 MB answer (a value could be that long) and refuses it at its
        // first line; `delete` expects a number and stops at 1 MiB.
        assert!(
            message.contains("more array elements than this answer can hold")
                || message.contains("response body larger than"),
            "{op:?}: {message}"
        );
        assert!(grown <= 8 * MIB, "{op:?}: grew {grown} bytes");
    }
}
