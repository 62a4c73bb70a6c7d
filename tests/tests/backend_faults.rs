//! Faults and bad input on the etcd and Redis backends, against the real services where
//! they can produce the fault (stopped mid-run, etcd's request limit, webdis's ACL and
//! credentials) and the fault server where only a fake will (echoed secrets, garbage,
//! silence). Every one is a `wasi:keyvalue` error naming method and path, never a trap.

#![expect(
    clippy::indexing_slicing,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use kvplug_tests::fault_server::{Action, FaultServer, response};
use kvplug_tests::services::{self, Etcd, Redis, Service};
use kvplug_tests::{Kv, adapter, other_message, settings};

const SECRET: &str = "s3cr3t-passw0rd";

#[tokio::test(flavor = "multi_thread")]
async fn etcd_stopped_mid_run_fails_calls_then_recovers_with_the_data() {
    let mut etcd = Etcd::start(&[]);
    let mut kv = Kv::connect(&etcd).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "k", b"kept").await.unwrap();
    etcd.stop();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("POST /v3/kv/range") && message.contains("connection refused"),
        "{message}"
    );
    let message = other_message(kv.increment(b, "n", 1).await.unwrap_err());
    assert!(message.contains("POST /v3/kv/txn"), "{message}");
    etcd.resume();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"kept".to_vec())));
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_request_too_large_is_a_clear_error_and_loses_nothing() {
    // etcd's default limit: 1.5 MiB per request.
    let etcd = Etcd::start(&[]);
    let mut kv = Kv::connect(&etcd).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "big", &vec![7u8; 1 << 20]).await.unwrap();
    // Just above the limit etcd itself refuses; further above, its gRPC layer does.
    for (size, words) in [
        (1_600_000, "HTTP 400: etcdserver: request is too large"),
        (
            2_500_000,
            "HTTP 429: grpc: received message larger than max",
        ),
    ] {
        let message = other_message(kv.set(b, "big", &vec![8u8; size]).await.unwrap_err());
        assert!(
            message.contains("POST /v3/kv/put")
                && message.contains(words)
                && message.contains("--max-request-bytes"),
            "{message}"
        );
    }
    let too_big = vec![9u8; 1_600_000];
    let message = other_message(
        kv.set_many(b, &[("a", b"small"), ("huge", &too_big)])
            .await
            .unwrap_err(),
    );
    assert!(
        message.contains("POST /v3/kv/txn: HTTP 400: etcdserver: request is too large"),
        "{message}"
    );
    assert_eq!(kv.get(b, "a").await, Ok(None), "half the batch was written");
    // A CAS swap that is refused leaves the value as it was.
    let cas = kv.cas_new(b, "big").await.unwrap();
    assert!(kv.swap(cas, &too_big).await.is_err());
    assert_eq!(kv.get(b, "big").await, Ok(Some(vec![7u8; 1 << 20])));
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stopped_behind_webdis_is_named_then_recovers() {
    let mut redis = Redis::start();
    let mut kv = Kv::connect(&redis).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "k", b"v").await.unwrap();
    redis.stop_redis();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("GET /GET/%21b%3Ak.raw: HTTP 503: webdis cannot reach Redis"),
        "{message}"
    );
    // Redis runs without persistence here: after the restart the store is empty, and the
    // scripts are loaded again on first use.
    redis.resume_redis();
    let started = std::time::Instant::now();
    loop {
        match kv.set(b, "k", b"again").await {
            Ok(()) => break,
            Err(e) if started.elapsed() < std::time::Duration::from_secs(10) => {
                let _ = e;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("webdis never reconnected: {e:?}"),
        }
    }
    let cas = kv.cas_new(b, "k").await.unwrap();
    kv.swap(cas, b"swapped").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"swapped".to_vec())));

    redis.stop_webdis();
    let message = other_message(kv.exists(b, "k").await.unwrap_err());
    assert!(
        message.contains("GET /EXISTS/%21b%3Ak.raw") && message.contains("connection refused"),
        "{message}"
    );
    redis.resume_webdis();
    assert_eq!(kv.exists(b, "k").await, Ok(true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_webdis_disables_is_named() {
    // An operator who turned scripting off: get, delete and exists work; set cannot (a
    // script, which gives the key a new generation), nor CAS, nor increment (a script, so
    // that webdis never writes a 64-bit integer reply).
    let redis = Redis::start_with(None, &["EVALSHA", "EVAL"]);
    let mut kv = Kv::connect(&redis).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.set(b, "k", b"v").await.unwrap_err());
    assert!(message.contains("refused `EVALSHA`"), "{message}");
    assert_eq!(kv.get(b, "k").await, Ok(None));
    assert_eq!(kv.exists(b, "k").await, Ok(false));
    let message = other_message(kv.increment(b, "n", 2).await.unwrap_err());
    assert!(message.contains("refused `EVALSHA`"), "{message}");
    assert_eq!(kv.get(b, "n").await, Ok(None));
    let message = other_message(kv.cas_new(b, "k").await.unwrap_err());
    assert!(
        message.contains("HTTP 403: webdis refused `EVALSHA`")
            && message.contains("ACL disables the command"),
        "{message}"
    );
    let message = other_message(kv.list_keys(b, None).await.unwrap_err());
    assert!(message.contains("refused `EVALSHA`"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn webdis_credentials_are_sent_and_never_echoed() {
    let credentials = format!("app:{SECRET}");
    let redis = Redis::start_with(Some(&credentials), &[]);
    let mut kv = Kv::connect(&redis).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "k", b"v").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"v".to_vec())));

    let mut wrong = settings(&redis.url());
    wrong.push(("token".into(), "app:wrong-password".into()));
    let mut kv = Kv::with_adapter(adapter("redis"), wrong).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("HTTP 403") && message.contains("credentials are missing or wrong"),
        "{message}"
    );
    assert!(!message.contains("wrong-password"), "{message}");
}

/// A server that echoes the request's Authorization header in a 500: no backend may quote
/// it, in either its raw or its encoded form.
#[tokio::test(flavor = "multi_thread")]
async fn echoed_credentials_are_redacted_on_every_backend() {
    let fault = FaultServer::start(|request| {
        let auth = request.header("authorization");
        // Marked as a protocol server's answer, so that `http` reads it too.
        response(
            500,
            &["kvplug-protocol: 1"],
            format!("boom: {auth} / {SECRET}").as_bytes(),
        )
    });
    // The backends whose credential is a `token`.
    let token_backends = services::backends().iter().filter(|b| b.takes_token);
    for backend in token_backends.map(|b| b.name) {
        let mut s = settings(&fault.url());
        s.push(("token".into(), format!("app:{SECRET}")));
        let mut kv = Kv::with_adapter(adapter(backend), s).await;
        let Ok(b) = kv.open("b").await else {
            continue;
        };
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        assert!(message.contains("HTTP 500"), "{backend}: {message}");
        assert!(message.contains("<redacted>"), "{backend}: {message}");
        assert!(!message.contains(SECRET), "{backend}: {message}");
        let encoded = base64_of(&format!("app:{SECRET}"));
        assert!(!message.contains(&encoded), "{backend}: {message}");
    }
}

/// Base64 of `text`, as HTTP Basic sends it (the test's own, independent of the adapter).
fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_answers_are_malformed_errors_not_traps() {
    let fault = FaultServer::start(|request| {
        if request.path.starts_with("/v3/") {
            // etcd: JSON of the wrong shape, then not JSON.
            if request.path.ends_with("range") {
                response(
                    200,
                    &[],
                    b"{\"header\": {}, \"kvs\": [{\"value\": \"***\"}]}",
                )
            } else {
                response(200, &[], b"<html>proxy error</html>")
            }
        } else if request.path.starts_with("/GET/") {
            // webdis: RESP that promises more than it has.
            response(200, &[], b"$10\r\nabc\r\n")
        } else {
            response(200, &[], b"not resp at all")
        }
    });
    let mut kv = Kv::with_adapter(adapter("etcd"), settings(&fault.url())).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("POST /v3/kv/range: malformed response") && message.contains("base64"),
        "{message}"
    );
    let message = other_message(kv.set(b, "k", b"v").await.unwrap_err());
    assert!(
        message.contains("POST /v3/kv/put: the answer (HTTP 200) is not from etcd"),
        "{message}"
    );
    let message = other_message(kv.increment(b, "k", 1).await.unwrap_err());
    assert!(
        message.contains("POST /v3/kv/txn: the answer (HTTP 200) is not from etcd"),
        "{message}"
    );

    let mut kv = Kv::with_adapter(adapter("redis"), settings(&fault.url())).await;
    let b = kv.open("b").await.unwrap();
    let message = other_message(kv.get(b, "k").await.unwrap_err());
    assert!(
        message.contains("GET /GET/%21b%3Ak.raw: the answer (HTTP 200) is not from webdis")
            && message.contains("not one Redis reply"),
        "{message}"
    );
    let message = other_message(kv.increment(b, "k", 1).await.unwrap_err());
    assert!(
        message.contains("GET /EVALSHA/")
            && message.contains(
                "/4/%21b%3Ak/%21b%23k/%21%23generation/%21b%21changes/1/3.raw: the answer (HTTP 200) is not from webdis"
            ),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_and_absent_services_are_named_errors_on_every_backend() {
    let fault = FaultServer::start(|_| Action::Hang);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (backend, path) in [
        ("etcd", "POST /v3/kv/range"),
        ("redis", "GET /GET/%21b%3Ak.raw"),
    ] {
        let mut s = settings(&fault.url());
        s.push(("timeout-ms".into(), "300".into()));
        let mut kv = Kv::with_adapter(adapter(backend), s).await;
        let b = kv.open("b").await.unwrap();
        let started = std::time::Instant::now();
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        assert!(
            message.contains(path) && message.contains("timed out"),
            "{backend}: {message}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(5));

        let mut kv = Kv::with_adapter(
            adapter(backend),
            settings(&format!("http://127.0.0.1:{port}")),
        )
        .await;
        let b = kv.open("b").await.unwrap();
        let message = other_message(kv.get(b, "k").await.unwrap_err());
        assert!(
            message.contains(path) && message.contains("connection refused"),
            "{backend}: {message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prefix_keeps_applications_apart_in_one_keyspace() {
    for service in [
        Box::new(Etcd::start(&[])) as Box<dyn Service>,
        Box::new(Redis::start()),
    ] {
        let backend = service.backend();
        let with_prefix = |prefix: &str| {
            let mut s = service.settings();
            s.push(("prefix".into(), prefix.into()));
            s
        };
        let mut one = Kv::with_adapter(adapter(backend), with_prefix("apps/one/")).await;
        let mut two = Kv::with_adapter(adapter(backend), with_prefix("apps/two/")).await;
        let b1 = one.open("b").await.unwrap();
        let b2 = two.open("b").await.unwrap();
        one.set(b1, "k", b"one").await.unwrap();
        assert_eq!(two.get(b2, "k").await, Ok(None), "{backend}");
        two.set(b2, "k", b"two").await.unwrap();
        assert_eq!(one.get(b1, "k").await, Ok(Some(b"one".to_vec())));
        assert_eq!(one.all_keys(b1).await.unwrap().0, vec!["k".to_owned()]);
        // A prefix with glob characters is matched literally (Redis lists with SCAN MATCH).
        let mut glob = Kv::with_adapter(adapter(backend), with_prefix("apps/*/")).await;
        let bg = glob.open("b").await.unwrap();
        assert_eq!(glob.all_keys(bg).await.unwrap().0, Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_etcd_cluster_behind_its_gateway_survives_losing_a_member() {
    let mut cluster = services::EtcdCluster::start();
    let mut kv = Kv::connect(&cluster).await;
    let b = kv.open("b").await.unwrap();
    for i in 0..6 {
        assert_eq!(kv.increment(b, "n", 1).await, Ok(i + 1));
    }
    cluster.kill(1);
    // If the killed member led, the others elect a new leader (about a second); meanwhile
    // etcd answers "request timed out", which arrives as a named error. Reads tell when the
    // cluster is back without risking an ambiguous write.
    let started = std::time::Instant::now();
    loop {
        match kv.get(b, "n").await {
            Ok(value) => {
                assert_eq!(value, Some(b"6".to_vec()), "no acknowledged increment lost");
                break;
            }
            Err(e) => {
                let message = other_message(e);
                assert!(message.contains("POST /v3/kv/range"), "{message}");
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(20),
                    "the cluster never recovered: {message}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }
    // The gateway spreads connections over the members and skips the one that is gone; a
    // two-of-three majority commits every write.
    for i in 6..12 {
        assert_eq!(kv.increment(b, "n", 1).await, Ok(i + 1));
    }
    kv.set(b, "k", b"after the loss").await.unwrap();
    assert_eq!(kv.get(b, "k").await, Ok(Some(b"after the loss".to_vec())));
}
