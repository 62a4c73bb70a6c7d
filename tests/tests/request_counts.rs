//! HTTP requests per `wasi:keyvalue` call, counted by the reference server: exactly one for
//! each single-key operation, list page, increment and swap, and one per batch call up to
//! the protocol's batch limit.

use kvplug_tests::{Kv, reference_server, settings};

/// Runs `call` and returns how many requests the server saw meanwhile.
macro_rules! count {
    ($server:expr, $call:expr) => {{
        let before = $server.requests();
        $call;
        $server.requests() - before
    }};
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_takes_exactly_one_request() {
    let (_dir, server) = reference_server();
    let mut kv = Kv::new(settings(&server.url())).await;
    let b = kv.open("counted").await.unwrap();
    kv.set_many(b, &[("x", b"1"), ("y", b"2")]).await.unwrap();

    let mut rows = Vec::new();
    rows.push(("get", count!(server, kv.get(b, "x").await.unwrap())));
    rows.push((
        "get (missing)",
        count!(server, kv.get(b, "nope").await.unwrap()),
    ));
    rows.push(("set", count!(server, kv.set(b, "k", b"v").await.unwrap())));
    rows.push(("delete", count!(server, kv.delete(b, "k").await.unwrap())));
    rows.push(("exists", count!(server, kv.exists(b, "x").await.unwrap())));
    rows.push((
        "list-keys page",
        count!(server, kv.list_keys(b, None).await.unwrap()),
    ));
    rows.push((
        "increment",
        count!(server, kv.increment(b, "n", 3).await.unwrap()),
    ));
    let cas = kv.cas_new(b, "x").await.unwrap();
    rows.push(("swap", count!(server, kv.swap(cas, b"new").await.unwrap())));
    rows.push((
        "get-many (3 keys)",
        count!(server, kv.get_many(b, &["x", "y", "z"]).await.unwrap()),
    ));
    rows.push((
        "set-many (3 pairs)",
        count!(
            server,
            kv.set_many(b, &[("a", b""), ("b", b""), ("c", b"")])
                .await
                .unwrap()
        ),
    ));
    rows.push((
        "delete-many (3 keys)",
        count!(server, kv.delete_many(b, &["a", "b", "c"]).await.unwrap()),
    ));

    println!("requests per call, kvplug-http.wasm against kvplug-server:");
    for (operation, requests) in &rows {
        println!("  {operation:<22} {requests}");
    }
    for (operation, requests) in rows {
        assert_eq!(requests, 1, "{operation} took {requests} requests");
    }
    assert_eq!(
        count!(server, kv.cas_new(b, "x").await.unwrap()),
        1,
        "cas.new reads once"
    );
    assert_eq!(
        count!(server, kv.open("other").await.unwrap()),
        1,
        "open checks the bucket once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn large_batches_take_one_request_per_batch_limit() {
    let (_dir, server) = reference_server();
    let mut kv = Kv::new(settings(&server.url())).await;
    let b = kv.open("big").await.unwrap();
    let keys: Vec<String> = (0..2500).map(|i| format!("k{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), k.as_bytes())).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    // The protocol allows 1000 entries per request: 2500 entries are 3 requests.
    assert_eq!(count!(server, kv.set_many(b, &pairs).await.unwrap()), 3);
    let values = kv.get_many(b, &refs).await.unwrap();
    assert_eq!(values.len(), 2500);
    assert!(values.iter().zip(&keys).all(|(v, k)| {
        v.as_ref()
            .is_some_and(|(key, value)| key == k && value == k.as_bytes())
    }));
    assert_eq!(count!(server, kv.get_many(b, &refs).await.unwrap()), 3);
    assert_eq!(count!(server, kv.delete_many(b, &refs).await.unwrap()), 3);
    assert_eq!(kv.all_keys(b).await.unwrap().0, Vec::<String>::new());
}
