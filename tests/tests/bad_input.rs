//! Bad input that used to get an unclear answer, on every backend: a `url` that reaches
//! something other than the backend's service, a batch with one entry too large, a key or
//! a bucket name beyond the backend's limit, and error messages about very long keys.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::fault_server::{Action, FaultServer, response};
use kvplug_tests::services::{self, Secrets, Service, name_limits};
use kvplug_tests::{CasError, Kv, adapter, other_message, settings};

kvplug_tests::on_every_backend!(
    names_beyond_the_limits_are_refused_before_anything_is_sent,
    the_longest_names_work_in_every_call,
);

/// The credentials of the fault-server tests below.
const SECRETS: Secrets = Secrets {
    token: None,
    aws_secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    session_token: None,
    account_key: "a2V5LW9mLXRoZS1mYXVsdC1zZXJ2ZXI=",
};

/// Settings that reach `url` with the credentials each backend needs.
fn settings_for(backend: &str, url: &str) -> kvplug_runner::Settings {
    (services::expectations(backend).fault_settings)(url, &SECRETS)
}

fn html() -> Action {
    response(
        200,
        &["content-type: text/html"],
        b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>",
    )
}

fn empty() -> Action {
    response(204, &[], b"")
}

/// A `url` that reaches some other web server, one that answers 200 with a page (or 204)
/// to everything: no call may pass, and each error names its request and says the answer
/// is not the service's.
#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_url_answering_200_or_204_to_everything_fails_every_call() {
    for (foreign, status) in [(html as fn() -> Action, 200), (empty, 204)] {
        for expected in services::backends() {
            let backend = expected.name;
            let absent = expected.absent;
            // The service's own answer for `cas.new` while `genuine`, so that `swap` has a
            // handle to try.
            let genuine = Arc::new(AtomicBool::new(false));
            let answer = Arc::clone(&genuine);
            let server = FaultServer::start(move |_| {
                if answer.load(Ordering::SeqCst) {
                    absent()
                } else {
                    foreign()
                }
            });
            let mut kv =
                Kv::with_adapter(adapter(backend), settings_for(backend, &server.url())).await;
            let b = kv.open("b").await.unwrap();
            let mut results = vec![
                kv.set(b, "k", b"v").await,
                kv.get(b, "k").await.map(drop),
                kv.delete(b, "k").await,
                kv.exists(b, "k").await.map(drop),
                kv.list_keys(b, None).await.map(drop),
                kv.increment(b, "k", 1).await.map(drop),
                kv.cas_new(b, "k").await.map(drop),
            ];
            genuine.store(true, Ordering::SeqCst);
            let cas = kv.cas_new(b, "k").await.unwrap();
            assert_eq!(kv.cas_current(cas).await, Ok(None), "{backend}");
            genuine.store(false, Ordering::SeqCst);
            results.push(match kv.swap(cas, b"v").await {
                Ok(()) => Ok(()),
                Err(CasError::StoreError(e)) => Err(e),
                Err(CasError::CasFailed(_)) => panic!("{backend}: a foreign answer is no conflict"),
            });
            results.extend([
                kv.get_many(b, &["k"]).await.map(drop),
                kv.set_many(b, &[("k", b"v")]).await,
                kv.delete_many(b, &["k"]).await,
            ]);
            for (result, request) in results.into_iter().zip((expected.requests)()) {
                let error = result
                    .err()
                    .unwrap_or_else(|| panic!("{backend}: `{request}` passed with {status}"));
                let message = other_message(error);
                assert!(
                    message.contains(request)
                        && message.contains(&format!("the answer (HTTP {status}) is not from"))
                        && message.ends_with("is `url` right?"),
                    "{backend}: {message}"
                );
            }
        }
    }
    // `open` of the `http` backend asks the server too.
    let server = FaultServer::start_answering_all(|_| html());
    let mut kv = Kv::with_adapter(adapter("http"), settings(&server.url())).await;
    let message = other_message(kv.open("b").await.unwrap_err());
    assert_eq!(
        message,
        "kvplug: HEAD /v1/buckets/b: the answer (HTTP 200) is not from a kvplug protocol server (no `kvplug-protocol` header): is `url` right?"
    );
}

/// Runs `call` and fails the test if the proxy forwarded any request meanwhile.
macro_rules! sends_nothing {
    ($proxy:expr, $backend:expr, $call:expr) => {{
        let before = $proxy.requests();
        let result = $call;
        assert_eq!(
            $proxy.requests(),
            before,
            "{}: a refused name was sent",
            $backend
        );
        result
    }};
}

async fn names_beyond_the_limits_are_refused_before_anything_is_sent(service: &dyn Service) {
    let backend = service.backend();
    let limits = name_limits(backend);
    let mut settings = service.settings();
    let proxy = CountingProxy::in_front_of(&mut settings);
    let mut kv = Kv::with_adapter(adapter(backend), settings).await;
    let b = kv.open("b").await.unwrap();
    kv.set(b, "kept", b"v").await.unwrap();
    let long = limits.too_long_key.as_str();
    // A batch larger than one request of any backend, whose last key is too long.
    let keys: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    let mut pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
    pairs.push((long, b"v"));
    let mut names: Vec<&str> = keys.iter().map(String::as_str).collect();
    names.push(long);
    let refusals = vec![
        (
            "set",
            sends_nothing!(proxy, backend, kv.set(b, long, b"v").await),
        ),
        (
            "get",
            sends_nothing!(proxy, backend, kv.get(b, long).await.map(drop)),
        ),
        (
            "delete",
            sends_nothing!(proxy, backend, kv.delete(b, long).await),
        ),
        (
            "exists",
            sends_nothing!(proxy, backend, kv.exists(b, long).await.map(drop)),
        ),
        (
            "increment",
            sends_nothing!(proxy, backend, kv.increment(b, long, 1).await.map(drop)),
        ),
        (
            "cas.new",
            sends_nothing!(proxy, backend, kv.cas_new(b, long).await.map(drop)),
        ),
        (
            "set-many",
            sends_nothing!(proxy, backend, kv.set_many(b, &pairs).await),
        ),
        (
            "get-many",
            sends_nothing!(proxy, backend, kv.get_many(b, &names).await.map(drop)),
        ),
        (
            "delete-many",
            sends_nothing!(proxy, backend, kv.delete_many(b, &names).await),
        ),
    ];
    for (call, result) in refusals {
        let message = other_message(result.expect_err(call));
        assert!(
            message.contains(limits.key_limit),
            "{backend} {call}: {message}"
        );
        // The message names the limit, not the key, which may be any length.
        assert!(
            message.len() < 400,
            "{backend} {call}: {} bytes",
            message.len()
        );
        if call.ends_with("-many") {
            assert!(
                message.contains("entry 1002 of 1002"),
                "{backend} {call}: {message}"
            );
        }
    }
    // Nothing of the batch was written, and nothing else was touched.
    let firsts = kv.get_many(b, &["k0", "k1000", "kept"]).await.unwrap();
    assert_eq!(
        firsts,
        vec![None, None, Some(("kept".to_owned(), b"v".to_vec()))],
        "{backend}"
    );
    if let Some((bucket, limit)) = &limits.too_long_bucket {
        let before = proxy.requests();
        let message = other_message(kv.open(bucket).await.unwrap_err());
        assert!(
            message.contains("bucket") && message.contains(limit),
            "{backend}: {message}"
        );
        assert_eq!(
            proxy.requests(),
            before,
            "{backend}: a refused bucket was sent"
        );
    }
}

/// The longest key and bucket name a backend takes work in every call, listing from a
/// cursor included: a limit leaves room for every call that names the key.
async fn the_longest_names_work_in_every_call(service: &dyn Service) {
    let backend = service.backend();
    let limits = name_limits(backend);
    let mut settings = service.settings();
    settings.push(("page-size".into(), "1".into()));
    let mut kv = Kv::with_adapter(adapter(backend), settings).await;
    let b = kv.open(&limits.longest_bucket).await.unwrap();
    let key = limits.longest_key.as_str();
    kv.set(b, key, b"v").await.unwrap();
    // `ÿ` sorts after `é`: on the services that list in key order, the first page ends at
    // the longest key and the second starts from a cursor after it.
    kv.set(b, "ÿ", b"after").await.unwrap();
    assert_eq!(kv.get(b, key).await, Ok(Some(b"v".to_vec())), "{backend}");
    assert_eq!(kv.exists(b, key).await, Ok(true), "{backend}");
    let (mut listed, pages) = kv.all_keys(b).await.unwrap();
    listed.sort();
    assert_eq!(listed, [key, "ÿ"], "{backend}");
    // Redis pages by SCAN, which may return both keys at once.
    if services::expectations(backend).exact_pages {
        assert!(pages >= 2, "{backend}: {pages} page(s)");
    }
    let cas = kv.cas_new(b, key).await.unwrap();
    kv.swap(cas, b"swapped").await.unwrap();
    assert_eq!(
        kv.get(b, key).await,
        Ok(Some(b"swapped".to_vec())),
        "{backend}"
    );
    kv.delete(b, key).await.unwrap();
    assert_eq!(kv.increment(b, key, 2).await, Ok(2), "{backend}");
    kv.set_many(b, &[(key, b"batch")]).await.unwrap();
    assert_eq!(
        kv.get_many(b, &[key]).await,
        Ok(vec![Some((key.to_owned(), b"batch".to_vec()))]),
        "{backend}"
    );
    kv.delete_many(b, &[key, "ÿ"]).await.unwrap();
    assert_eq!(
        kv.all_keys(b).await.unwrap().0,
        Vec::<String>::new(),
        "{backend}"
    );
}

/// A batch whose last value is more than its service takes writes nothing, on every backend
/// with a value limit: where the adapter knows the limit (DynamoDB, Azure Table) it checks
/// every entry first; where the service sets it (kvplug-server's body limit, etcd's
/// request limit) the entry too large to share a request is sent first, and refused
/// before anything else is written.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_whose_last_value_is_too_large_writes_nothing() {
    let cases: Vec<_> = services::backends()
        .iter()
        .map(|expected| (expected.oversized_batch)())
        .collect();
    for services::OversizedBatch {
        service,
        size,
        limit,
    } in cases
    {
        let backend = service.backend();
        let mut kv = Kv::connect(&*service).await;
        let b = kv.open("b").await.unwrap();
        let keys: Vec<String> = (0..300).map(|i| format!("k{i}")).collect();
        let large = vec![7u8; size];
        let mut pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), &b"v"[..])).collect();
        pairs.push(("large", &large));
        let message = other_message(kv.set_many(b, &pairs).await.unwrap_err());
        assert!(message.contains(limit), "{backend}: {message}");
        assert_eq!(
            kv.get_many(b, &["k0", "k299", "large"]).await,
            Ok(vec![None, None, None]),
            "{backend}: part of the batch was written"
        );
    }
}

/// Messages about requests whose path holds a long key show the path's start and its
/// length, not the whole path.
#[tokio::test(flavor = "multi_thread")]
async fn messages_about_long_keys_stay_short() {
    let server = FaultServer::start(|_| response(500, &["kvplug-protocol: 1"], b"internal error"));
    for (backend, request) in [
        ("http", "GET /v1/buckets/b/keys/%C3%A9%C3%A9"),
        ("redis", "GET /GET/"),
    ] {
        let mut kv = Kv::with_adapter(adapter(backend), settings(&server.url())).await;
        let b = kv.open("b").await.unwrap();
        // The longest key these backends send: its path is about 24 KiB.
        let key = name_limits(backend).longest_key;
        let message = other_message(kv.get(b, &key).await.unwrap_err());
        assert!(message.len() < 1024, "{backend}: {} bytes", message.len());
        assert!(
            message.contains(request)
                && message.contains(" bytes): HTTP 500: internal error")
                && message.contains("%C3%A9%C3%A9"),
            "{backend}: {message}"
        );
        // A 64 KiB key is refused before sending, in a message as short.
        let key = "é".repeat(32 * 1024);
        let message = other_message(kv.set(b, &key, b"v").await.unwrap_err());
        assert!(
            message.len() < 1024 && message.contains("65536 bytes"),
            "{backend}: {message}"
        );
    }
    // DynamoDB: a 2 MiB key is the key's fault, not the value's.
    let mut kv =
        Kv::with_adapter(adapter("dynamodb"), settings_for("dynamodb", &server.url())).await;
    let b = kv.open("b").await.unwrap();
    let key = "k".repeat(2 << 20);
    let message = other_message(kv.set(b, &key, b"v").await.unwrap_err());
    assert!(
        message.len() < 1024
            && message.contains("sort keys hold at most 1024 bytes")
            && !message.contains("value"),
        "{message}"
    );
}
