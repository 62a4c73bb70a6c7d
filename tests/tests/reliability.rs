//! The promises no ordinary fault shows: a call ends by its deadline however the service
//! trickles; an answer larger than memory is an error, not a trap, on a host that caps its
//! guests; a credential echoed in any encoding never reaches a message.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::time::{Duration, Instant};

use kvplug_tests::fault_server::{Action, FaultServer, chunked_head, response};
use kvplug_tests::services::{self, Etcd, Redis, Reference, Secrets, Service};
use kvplug_tests::{Kv, adapter, other_message, settings};

const TOKEN: &str = "app:s3cr3t/p4ss+word";

/// The credentials every backend is configured with here, each taking those of its kind.
const SECRETS: Secrets = Secrets {
    token: Some(TOKEN),
    aws_secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    session_token: Some("FQoGZXIvYXdzEBYaDkiOGi/session+token"),
    account_key: "c2VjcmV0LWtleS10aGF0LWlzLW5vdC1henVyaXRlcy1vd24tYW5kLWxvbmctZW5vdWdoLTY0Ynl0ZXM=",
};

fn backend_settings(backend: &str, url: &str) -> kvplug_runner::Settings {
    (services::expectations(backend).fault_settings)(url, &SECRETS)
}

/// The secrets `backend` is configured with, as the service could see them.
fn secrets_of(backend: &str) -> Vec<&'static str> {
    (services::expectations(backend).configured_secrets)(&SECRETS)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_answer_ends_at_the_calls_deadline_on_every_backend() {
    // Each byte comes well within any per-read timeout; the whole answer would take 200 s.
    let fault = FaultServer::start(|_| {
        let mut head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n".to_vec();
        for mark in services::marks() {
            head.extend_from_slice(format!("{mark}\r\n").as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        Action::Trickle {
            head,
            body: vec![b'x'; 1000],
            gap: Duration::from_millis(200),
        }
    });
    for backend in services::backends().iter().map(|b| b.name) {
        let mut s = backend_settings(backend, &fault.url());
        s.push(("timeout-ms".into(), "1000".into()));
        let mut kv = Kv::with_adapter(adapter(backend), s).await;
        let b = kv.open("b").await.unwrap();
        let started = Instant::now();
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        let took = started.elapsed();
        assert!(
            message.contains("timed out") && message.contains("`timeout-ms` = 1000 ms"),
            "{backend}: {message}"
        );
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{backend}: took {took:?}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_timeout_bounds_each_wait_within_the_deadline() {
    // Silent after the head: `idle-timeout-ms` ends the call long before `timeout-ms`.
    let fault = FaultServer::start(|_| Action::Trickle {
        head: b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\nkvplug-protocol: 1\r\n\r\n".to_vec(),
        body: b"x".to_vec(),
        gap: Duration::from_secs(30),
    });
    let mut s = settings(&fault.url());
    s.push(("timeout-ms".into(), "20000".into()));
    s.push(("idle-timeout-ms".into(), "300".into()));
    let mut kv = Kv::with_adapter(adapter("http"), s).await;
    let b = kv.open("b").await.unwrap();
    let started = Instant::now();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(started.elapsed() < Duration::from_secs(5), "{message}");
    assert!(message.contains("GET /v1/buckets/b/keys/k"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_stop_at_the_deadline() {
    // A service that is always busy: DynamoDB would retry six times with backoff (about
    // 1.3 s and more); a 500 ms budget ends it sooner, saying why.
    let fault = FaultServer::start(|_| {
        response(
            400,
            &[services::dynamodb::MARK],
            br#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}"#,
        )
    });
    let mut s = backend_settings("dynamodb", &fault.url());
    s.push(("timeout-ms".into(), "500".into()));
    let mut kv = Kv::with_adapter(adapter("dynamodb"), s).await;
    let b = kv.open("b").await.unwrap();
    let started = Instant::now();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(started.elapsed() < Duration::from_millis(900), "{message}");
    assert!(
        message.contains("ThrottlingException") && message.contains("deadline"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn credentials_echoed_in_any_encoding_never_reach_a_message_on_any_backend() {
    for backend in services::backends().iter().map(|b| b.name) {
        for secret in secrets_of(backend) {
            for form in services::echoed_forms(secret) {
                // Quoted the way each service words errors: DynamoDB's JSON message (escaped
                // once more, as JSON would, and unescaped by the adapter), everyone else's
                // body as it is.
                let body =
                    (services::expectations(backend).error_body)(&format!("you sent {form}"));
                let fault =
                    FaultServer::start(move |_| response(400, services::marks(), body.as_bytes()));
                let mut kv =
                    Kv::with_adapter(adapter(backend), backend_settings(backend, &fault.url()))
                        .await;
                let b = kv.open("b").await.unwrap();
                let message = other_message(kv.set(b, "k", b"v").await.unwrap_err());
                assert!(
                    !message.contains(&form) && !message.contains(secret),
                    "{backend}: {form}: {message}"
                );
                assert!(
                    message.contains("<redacted>"),
                    "{backend}: {form}: {message}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_short_password_withholds_the_services_text() {
    let fault = FaultServer::start(|_| response(500, services::marks(), b"boom: pw and cHc="));
    let mut s = settings(&fault.url());
    s.push(("token".into(), "app:pw".into()));
    let mut kv = Kv::with_adapter(adapter("redis"), s).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("HTTP 500") && message.contains("withheld"),
        "{message}"
    );
    assert!(!message.contains("pw"), "{message}");
}

/// 128 MiB, as `wasmtime run -W max-memory-size=134217728` gives a guest.
const CAP: usize = 128 << 20;

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_error_body_costs_neither_time_nor_memory() {
    let fault = FaultServer::start(|_| Action::Endless {
        head: chunked_head(500, services::marks()),
    });
    for backend in services::backends().iter().map(|b| b.name) {
        let mut kv = Kv::capped(
            adapter(backend),
            backend_settings(backend, &fault.url()),
            CAP,
        )
        .await;
        let b = kv.open("b").await.unwrap();
        let before = kv.linear_memory();
        let started = Instant::now();
        // `get`, not `exists`: the http backend's `exists` is a HEAD, whose answer has no
        // body, so the endless chunks would reach the host as a broken next answer instead.
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        assert!(message.contains("HTTP 500"), "{backend}: {message}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{backend}: {message}"
        );
        let grown = kv.linear_memory() - before;
        assert!(grown < 1 << 20, "{backend}: grew {grown} bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_answer_is_an_error_under_a_memory_cap() {
    let fault = FaultServer::start(|_| Action::Endless {
        head: chunked_head(200, services::marks()),
    });
    for backend in ["http", "redis"] {
        let mut kv = Kv::capped(adapter(backend), settings(&fault.url()), CAP).await;
        let b = kv.open("b").await.unwrap();
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        assert!(
            message.contains("does not fit in the adapter's memory"),
            "{backend}: {message}"
        );
        assert!(kv.linear_memory() <= CAP);
    }
}

/// On a capped host, a stored value of `fits` bytes is read (its answer held once, never
/// beside a second copy) and one of `too_large` is a clear error; neither traps. The values
/// are written by an uncapped instance.
async fn large_values_under_a_memory_cap(service: &dyn Service, fits: usize, too_large: usize) {
    let mut writer = Kv::connect(service).await;
    let b = writer.open("big").await.unwrap();
    writer.set(b, "fits", &vec![1u8; fits]).await.unwrap();
    writer
        .set(b, "too-large", &vec![2u8; too_large])
        .await
        .unwrap();
    drop(writer);

    let mut kv = Kv::capped(adapter(service.backend()), service.settings(), CAP).await;
    let b = kv.open("big").await.unwrap();
    let value = kv.get(b, "fits").await.unwrap().unwrap();
    assert!(value.len() == fits && value.iter().all(|&v| v == 1));
    let message = other_message(kv.get(b, "too-large").await.unwrap_err());
    assert!(
        message.contains("does not fit in the adapter's memory")
            && (message.contains("GET ") || message.contains("POST ")),
        "{message}"
    );
    // The instance is still usable.
    assert_eq!(kv.exists(b, "fits").await, Ok(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_values_under_a_memory_cap_on_the_reference_server() {
    let service = Reference::start_with(|c| c.max_body = 256 << 20);
    large_values_under_a_memory_cap(&service, 90 << 20, 120 << 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_values_under_a_memory_cap_on_redis() {
    let service = Redis::start_with_max_request(256 << 20);
    large_values_under_a_memory_cap(&service, 90 << 20, 120 << 20).await;
}

/// etcd's answer carries the value as base64 (4/3 of it): 72 MiB is a 96 MiB answer, which
/// fits under the cap only if the value is decoded inside the answer, not beside it.
#[tokio::test(flavor = "multi_thread")]
async fn large_values_under_a_memory_cap_on_etcd() {
    let service = Etcd::start(&["--max-request-bytes", "268435456"]);
    large_values_under_a_memory_cap(&service, 72 << 20, 100 << 20).await;
}

/// A value that arrives in chunks, its length unknown until the end, is held once too: the
/// buffer grows in place rather than doubling and moving.
#[tokio::test(flavor = "multi_thread")]
async fn a_chunked_value_costs_its_own_size() {
    const SIZE: usize = 64 << 20;
    let fault = FaultServer::start(|_| Action::Repeat {
        head: chunked_head(200, services::marks()),
        start: Vec::new(),
        piece: vec![7; 1024],
        times: SIZE / 1024,
        end: Vec::new(),
    });
    let mut kv = Kv::capped(adapter("http"), settings(&fault.url()), CAP).await;
    let b = kv.open("b").await.unwrap();
    let before = kv.linear_memory();
    let value = kv.get(b, "k").await.unwrap().unwrap();
    assert!(value.len() == SIZE && value.iter().all(|&v| v == 7));
    let grown = kv.linear_memory() - before;
    assert!(grown <= SIZE + SIZE / 32, "grew {grown} bytes for {SIZE}");
}
