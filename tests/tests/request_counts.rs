//! HTTP requests per `wasi:keyvalue` call on every backend, counted by a proxy in front of
//! the real service: one for each single-key operation, list page and swap wherever the
//! service allows it, and one per batch call up to each service's batch limit.

#![expect(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use kvplug_tests::Kv;
use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::services::{Service, fewest_requests};

kvplug_tests::on_every_backend!(
    every_operation_takes_the_fewest_requests_the_service_allows,
    large_batches_take_one_request_per_batch_limit,
);

/// Runs `call` and returns how many requests the proxy forwarded meanwhile.
macro_rules! count {
    ($proxy:expr, $call:expr) => {{
        let before = $proxy.requests();
        $call;
        $proxy.requests() - before
    }};
}

/// An adapter for `service` whose requests all pass through a counting proxy.
async fn counted(service: &dyn Service) -> (Kv, CountingProxy) {
    let mut settings = service.settings();
    let proxy = CountingProxy::in_front_of(&mut settings);
    let kv = Kv::with_adapter(kvplug_tests::adapter(service.backend()), settings).await;
    (kv, proxy)
}

async fn every_operation_takes_the_fewest_requests_the_service_allows(service: &dyn Service) {
    let (mut kv, proxy) = counted(service).await;
    let fewest = fewest_requests(service.backend());
    let (open, increment, increment_new) = (fewest.open, fewest.increment, fewest.increment_new);
    let b = kv.open("counted").await.unwrap();
    kv.set_many(b, &[("x", b"1"), ("y", b"2")]).await.unwrap();
    // Load each of Redis's scripts once (the first call after Redis starts sends the
    // script itself, one extra request); then count the steady state.
    kv.set(b, "warm", b"v").await.unwrap();
    let cas = kv.cas_new(b, "warm").await.unwrap();
    kv.swap(cas, b"up").await.unwrap();
    kv.get_many(b, &["x"]).await.unwrap();
    kv.delete_many(b, &["warm"]).await.unwrap();
    kv.delete(b, "warm").await.unwrap();
    kv.list_keys(b, None).await.unwrap();
    kv.increment(b, "n", 1).await.unwrap();

    let mut rows = Vec::new();
    rows.push(("get", count!(proxy, kv.get(b, "x").await.unwrap()), 1));
    rows.push((
        "get (missing)",
        count!(proxy, kv.get(b, "nope").await.unwrap()),
        1,
    ));
    rows.push(("set", count!(proxy, kv.set(b, "k", b"v").await.unwrap()), 1));
    rows.push((
        "set (empty value)",
        count!(proxy, kv.set(b, "e", b"").await.unwrap()),
        1,
    ));
    rows.push(("delete", count!(proxy, kv.delete(b, "k").await.unwrap()), 1));
    rows.push(("exists", count!(proxy, kv.exists(b, "x").await.unwrap()), 1));
    rows.push((
        "list-keys page",
        count!(proxy, kv.list_keys(b, None).await.unwrap()),
        1,
    ));
    rows.push((
        "increment (new counter)",
        count!(proxy, kv.increment(b, "fresh", 3).await.unwrap()),
        increment_new,
    ));
    rows.push((
        "increment",
        count!(proxy, kv.increment(b, "n", 3).await.unwrap()),
        increment,
    ));
    rows.push((
        "cas.new",
        count!(proxy, kv.cas_new(b, "x").await.unwrap()),
        1,
    ));
    let cas = kv.cas_new(b, "x").await.unwrap();
    rows.push((
        "swap",
        count!(proxy, kv.swap(cas, b"new").await.unwrap()),
        1,
    ));
    rows.push((
        "get-many (3 keys)",
        count!(proxy, kv.get_many(b, &["x", "y", "z"]).await.unwrap()),
        1,
    ));
    rows.push((
        "set-many (3 pairs)",
        count!(
            proxy,
            kv.set_many(b, &[("a", b""), ("b", b"2"), ("c", b"3")])
                .await
                .unwrap()
        ),
        1,
    ));
    rows.push((
        "delete-many (3 keys)",
        count!(proxy, kv.delete_many(b, &["a", "b", "c"]).await.unwrap()),
        1,
    ));
    rows.push(("open", count!(proxy, kv.open("other").await.unwrap()), open));

    println!("requests per call, kvplug-{}.wasm:", service.backend());
    for (operation, requests, _) in &rows {
        println!("  {operation:<24} {requests}");
    }
    for (operation, requests, expected) in rows {
        assert_eq!(
            requests, expected,
            "{operation} took {requests} requests, expected {expected}"
        );
    }
    assert_eq!(kv.get(b, "e").await, Ok(Some(vec![])));
}

async fn large_batches_take_one_request_per_batch_limit(service: &dyn Service) {
    let (mut kv, proxy) = counted(service).await;
    let fewest = fewest_requests(service.backend());
    let b = kv.open("big").await.unwrap();
    let keys: Vec<String> = (0..2500).map(|i| format!("k{i}")).collect();
    let pairs: Vec<(&str, &[u8])> = keys.iter().map(|k| (k.as_str(), k.as_bytes())).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Warm the scripts (Redis) with a batch of one of each.
    kv.set_many(b, &pairs[..1]).await.unwrap();
    kv.get_many(b, &refs[..1]).await.unwrap();
    kv.delete_many(b, &refs[..1]).await.unwrap();

    let reads = 2500usize.div_ceil(fewest.batch_read) as u64;
    let writes = 2500usize.div_ceil(fewest.batch_write) as u64;
    let deletes = 2500usize.div_ceil(fewest.batch_delete) as u64;
    assert_eq!(count!(proxy, kv.set_many(b, &pairs).await.unwrap()), writes);
    let values = kv.get_many(b, &refs).await.unwrap();
    assert_eq!(values.len(), 2500);
    assert!(values.iter().zip(&keys).all(|(v, k)| {
        v.as_ref()
            .is_some_and(|(key, value)| key == k && value == k.as_bytes())
    }));
    assert_eq!(count!(proxy, kv.get_many(b, &refs).await.unwrap()), reads);
    assert_eq!(
        count!(proxy, kv.delete_many(b, &refs).await.unwrap()),
        deletes
    );
    assert_eq!(kv.all_keys(b).await.unwrap().0, Vec::<String>::new());
}
