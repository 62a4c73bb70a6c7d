//! Faults and bad input: every one becomes the right `wasi:keyvalue` error, never a trap
//! (the harness fails any test whose adapter traps), and no message carries the token.

use kvplug_tests::fault_server::{Action, FaultServer, response};
use kvplug_tests::{Kv, KvError, other_message, reference_server_with, settings};

const TOKEN: &str = "s3cr3t-t0ken-value";

fn with_token(url: &str) -> kvplug_runner::Settings {
    let mut s = settings(url);
    s.push(("token".into(), TOKEN.into()));
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn server_down_is_an_error_naming_the_request() {
    // Bind and drop: the port is free and nobody listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut kv = Kv::new(with_token(&format!("http://127.0.0.1:{port}"))).await;
    let message = other_message(kv.open("b").await.unwrap_err());
    assert!(
        message.contains("HEAD /v1/buckets/b") && message.contains("connection refused"),
        "{message}"
    );
    assert!(!message.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_stopped_mid_run_fails_calls_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = kvplug_server::Config::new(dir.path());
    let server = kvplug_server::Server::start(config.clone()).unwrap();
    let addr = server.addr();
    let mut kv = Kv::new(settings(&server.url())).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "k", b"kept").await.unwrap();
    server.stop();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(message.contains("GET /v1/buckets/b/keys/k"), "{message}");
    // Same address and data: the open bucket works again, and the acknowledged write is there.
    config.listen = addr;
    let _server = kvplug_server::Server::start(config).unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"kept".to_vec())));
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_keep_method_path_status_and_reason_but_not_the_token() {
    let fault = FaultServer::start(|request| {
        // A careless server that echoes the Authorization header in its error body.
        let auth = request.header("authorization");
        response(
            503,
            &["kvplug-protocol: 1", "kvplug-error: internal"],
            format!("storage offline; you sent {auth}").as_bytes(),
        )
    });
    let mut kv = Kv::new(with_token(&fault.url())).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.set(b, "a/key", b"v").await.unwrap_err());
    assert!(
        message.contains("PUT /v1/buckets/b/keys/a%2Fkey"),
        "{message}"
    );
    assert!(
        message.contains("HTTP 503") && message.contains("storage offline"),
        "{message}"
    );
    assert!(!message.contains(TOKEN), "token leaked: {message}");
    assert!(message.contains("<redacted>"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_truncated_bodies_are_errors() {
    // Answers of a protocol server (they carry its header) that break the protocol.
    const PROTOCOL: &[&str] = &["kvplug-protocol: 1"];
    let fault = FaultServer::start(|request| {
        match request.method.as_str() {
        // A list page whose frame says 100 bytes and holds 3.
        "GET" if request.path.contains("limit=") => {
            response(200, PROTOCOL, &[0, 0, 0, 100, b'a', b'b', b'c'])
        }
        // A value promised as 1000 bytes, cut after 10.
        "GET" => Action::Raw(
            b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nkvplug-protocol: 1\r\netag: \"1\"\r\n\r\n0123456789"
                .to_vec(),
        ),
        // get-many answering two values for one key.
        "POST" if request.path.ends_with("/get-many") => {
            response(200, PROTOCOL, &[1, 0, 0, 0, 1, b'x', 0])
        }
        // An increment result that is not a number.
        "POST" => response(200, PROTOCOL, b"lots"),
        // Not even HTTP.
        _ => Action::Raw(b"garbage\r\n\r\n".to_vec()),
    }
    });
    let mut kv = Kv::new(settings(&fault.url())).await;
    let b = kv.open("b").await.unwrap();

    let message = other_message(kv.list_keys(b, None).await.unwrap_err());
    assert!(
        message.contains("malformed response") && message.contains("GET /v1/buckets/b?limit="),
        "{message}"
    );
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("GET /v1/buckets/b/keys/k") && message.contains("cut short"),
        "{message}"
    );
    let message = other_message(kv.get_many(b, &["k"]).await.unwrap_err());
    assert!(message.contains("more values than keys"), "{message}");
    let message = other_message(kv.increment(b, "k", 1).await.unwrap_err());
    assert!(message.contains("not a number"), "{message}");
    let message = other_message(kv.set(b, "k", b"v").await.unwrap_err());
    assert!(
        message.contains("PUT /v1/buckets/b/keys/k: no valid HTTP answer"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_times_out_after_timeout_ms() {
    let fault = FaultServer::start(|_| Action::Hang);
    let mut s = settings(&fault.url());
    s.push(("timeout-ms".into(), "300".into()));
    let mut kv = Kv::new(s).await;
    let b = kv.open("b").await.unwrap();
    let started = std::time::Instant::now();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    let waited = started.elapsed();
    assert!(message.contains("timed out"), "{message}");
    assert!(
        waited < std::time::Duration::from_secs(5),
        "took {waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_that_is_not_the_protocols_is_not_a_missing_key() {
    // A URL pointing at some other web server must not make every key look absent.
    let fault = FaultServer::start(|_| response(404, &[], b"<h1>Not Found</h1>"));
    let mut kv = Kv::new(settings(&fault.url())).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains(
            "GET /v1/buckets/b/keys/k: the answer (HTTP 404) is not from a kvplug protocol server"
        ),
        "{message}"
    );
    // Nor does a protocol server's 404 that does not say `no-such-key`.
    let fault = FaultServer::start(|_| {
        response(404, &["kvplug-protocol: 1", "kvplug-error: not-found"], b"")
    });
    let mut kv = Kv::new(settings(&fault.url())).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(message.contains("HTTP 404: not-found"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn values_beyond_the_servers_limit_are_refused_clearly() {
    let (_dir, server) = reference_server_with(|c| c.max_body = 64 << 10);
    let mut kv = Kv::new(settings(&server.url())).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "fits", &vec![7; 64 << 10]).await.unwrap();
    let message = other_message(kv.set(b, "too-big", &vec![7; 1 << 20]).await.unwrap_err());
    assert!(
        message.contains("HTTP 413") && message.contains("too-large"),
        "{message}"
    );
    assert_eq!(kv.get(b, "too-big").await, Ok(None));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_buckets_and_missing_settings() {
    let (_dir, server) = reference_server_with(|c| {
        c.token = Some(TOKEN.into());
        c.buckets = Some(["allowed".to_owned(), "other".to_owned()].into());
    });
    // Right token: works.
    let mut kv = Kv::new(with_token(&server.url())).await;
    let b = kv.open("allowed").await.unwrap();
    kv.set(b, "k", b"v").await.unwrap();
    // No token, wrong token: access-denied.
    let mut anonymous = Kv::new(settings(&server.url())).await;
    assert_eq!(anonymous.open("allowed").await, Err(KvError::AccessDenied));
    let mut wrong = settings(&server.url());
    wrong.push(("token".into(), "not-the-token".into()));
    let mut wrong = Kv::new(wrong).await;
    assert_eq!(wrong.open("allowed").await, Err(KvError::AccessDenied));
    // A bucket the server does not have: no-such-store.
    assert_eq!(kv.open("elsewhere").await, Err(KvError::NoSuchStore));
    // The adapter's own allow-list: access-denied without asking the server.
    let mut listed = with_token(&server.url());
    listed.push(("buckets".into(), "allowed".into()));
    let mut listed = Kv::new(listed).await;
    let before = server.requests();
    assert_eq!(listed.open("other").await, Err(KvError::AccessDenied));
    assert_eq!(server.requests(), before);
    assert!(listed.open("allowed").await.is_ok());
    // No url at all: a clear error at open, not a trap.
    let mut unset = Kv::new(vec![]).await;
    let message = other_message(unset.open("b").await.unwrap_err());
    assert!(message.contains("`url` is not set"), "{message}");
    let mut bad = Kv::new(vec![(
        "url".into(),
        format!("http://user:{TOKEN}@127.0.0.1:1"),
    )])
    .await;
    let message = other_message(bad.open("b").await.unwrap_err());
    assert!(
        message.contains("credentials") && !message.contains(TOKEN),
        "{message}"
    );
    let mut bad = Kv::new(vec![("url".into(), "127.0.0.1:8787".into())]).await;
    let message = other_message(bad.open("b").await.unwrap_err());
    assert!(message.contains("http://"), "{message}");
}
