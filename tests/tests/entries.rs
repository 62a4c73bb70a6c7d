//! kvplug's extension, `kvplug:keyvalue/entries@0.1.0`, on every backend's real service,
//! called from the host: exported exactly where the registry says, the requests each call
//! takes (counted by a proxy), and atomicity under several racing instances. Its semantics
//! case by case are the `conformance-entries` suite (`tests/tests/conformance.rs`).

#![expect(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::entries::{
    EntriesKv, EntryError, InsertMode, InsertOptions, ListOptions, Precondition,
};
use kvplug_tests::services::Service;

kvplug_tests::on_every_backend!(
    every_extension_call_takes_the_stated_requests,
    racing_adds_have_one_winner_and_racing_appends_lose_nothing,
);

/// Whether the registry says `backend`'s adapter exports the extension.
fn extended(backend: &str) -> bool {
    kvplug_compose::registry::backend(backend).unwrap().entries
}

/// Requests per extension call on `backend` (docs/extension-design.md §2.6).
struct Expected {
    lookup: u64,
    overwrite: u64,
    overwrite_ttl: u64,
    add: u64,
    with_generation: u64,
    append_absent: u64,
    append_present: u64,
    delete: u64,
    list_page: u64,
}

fn expected(backend: &str) -> Expected {
    match backend {
        // One request per call: the server decides inside its transaction.
        "http" => Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 1,
            add: 1,
            with_generation: 1,
            append_absent: 1,
            append_present: 1,
            delete: 1,
            list_page: 1,
        },
        // GetItem, PutItem, DeleteItem, Query; the service's conditions decide, except where
        // the result depends on what the key holds: append and prepend read it first.
        "dynamodb" => Expected {
            lookup: 1,
            overwrite: 1,
            overwrite_ttl: 1,
            add: 1,
            with_generation: 1,
            append_absent: 2,
            append_present: 2,
            delete: 1,
            list_page: 1,
        },
        other => unimplemented!("no request counts stated for `{other}`"),
    }
}

/// Runs `call` and returns how many requests the proxy forwarded meanwhile.
macro_rules! count {
    ($proxy:expr, $call:expr) => {{
        let before = $proxy.requests();
        $call;
        $proxy.requests() - before
    }};
}

async fn every_extension_call_takes_the_stated_requests(service: &dyn Service) {
    let backend = service.backend();
    if !extended(backend) {
        // Not yet carried: the artifact must not claim it.
        let error = EntriesKv::try_with(backend, service.settings())
            .await
            .err()
            .unwrap();
        assert!(
            format!("{error:#}").contains("does not export"),
            "{error:#}"
        );
        return;
    }
    let mut settings = service.settings();
    let proxy = CountingProxy::in_front_of(&mut settings);
    let mut kv = EntriesKv::with(backend, settings).await;
    let b = kv.open("counted").await;
    let want = expected(backend);
    let plain = InsertOptions::new;
    // Warm up every path once (Redis loads each script on its first use).
    kv.insert(b, "w", b"1", &plain(InsertMode::Overwrite))
        .await
        .unwrap();
    kv.insert(b, "w", b"2", &plain(InsertMode::Append))
        .await
        .unwrap();
    kv.lookup(b, "w").await.unwrap();
    kv.delete(b, "w", None).await.unwrap();
    kv.list(b, &ListOptions::default()).await.unwrap();

    let mut rows = Vec::new();
    rows.push(("get-limits", count!(proxy, kv.limits(b).await), 0));
    rows.push((
        "insert overwrite",
        count!(
            proxy,
            kv.insert(b, "k", b"v", &plain(InsertMode::Overwrite))
                .await
                .unwrap()
        ),
        want.overwrite,
    ));
    let ttl = InsertOptions {
        time_to_live_sec: Some(600),
        metadata: Some(b"m".to_vec()),
        ..plain(InsertMode::Overwrite)
    };
    rows.push((
        "insert overwrite, TTL and metadata",
        count!(proxy, kv.insert(b, "t", b"v", &ttl).await.unwrap()),
        want.overwrite_ttl,
    ));
    rows.push((
        "insert add",
        count!(
            proxy,
            kv.insert(b, "a", b"v", &plain(InsertMode::Add))
                .await
                .unwrap()
        ),
        want.add,
    ));
    rows.push((
        "insert add (refused)",
        count!(
            proxy,
            kv.insert(b, "a", b"v", &plain(InsertMode::Add))
                .await
                .unwrap_err()
        ),
        want.add,
    ));
    let generation = kv.lookup(b, "k").await.unwrap().unwrap().generation;
    let conditional = InsertOptions {
        if_generation_match: Some(generation),
        ..plain(InsertMode::Overwrite)
    };
    rows.push((
        "insert with generation",
        count!(proxy, kv.insert(b, "k", b"w", &conditional).await.unwrap()),
        want.with_generation,
    ));
    rows.push((
        "insert with generation (lost)",
        count!(
            proxy,
            kv.insert(b, "k", b"x", &conditional).await.unwrap_err()
        ),
        want.with_generation,
    ));
    rows.push((
        "append (absent key)",
        count!(
            proxy,
            kv.insert(b, "c", b"1", &plain(InsertMode::Append))
                .await
                .unwrap()
        ),
        want.append_absent,
    ));
    rows.push((
        "append",
        count!(
            proxy,
            kv.insert(b, "c", b"2", &plain(InsertMode::Append))
                .await
                .unwrap()
        ),
        want.append_present,
    ));
    rows.push((
        "prepend",
        count!(
            proxy,
            kv.insert(b, "c", b"0", &plain(InsertMode::Prepend))
                .await
                .unwrap()
        ),
        want.append_present,
    ));
    rows.push((
        "lookup",
        count!(proxy, kv.lookup(b, "c").await.unwrap()),
        want.lookup,
    ));
    rows.push((
        "lookup (absent)",
        count!(proxy, kv.lookup(b, "nope").await.unwrap()),
        want.lookup,
    ));
    let page = ListOptions {
        prefix: Some("c".into()),
        ..ListOptions::default()
    };
    rows.push((
        "list page",
        count!(proxy, kv.list(b, &page).await.unwrap()),
        want.list_page,
    ));
    rows.push((
        "delete",
        count!(proxy, kv.delete(b, "a", None).await.unwrap()),
        want.delete,
    ));
    let generation = kv.lookup(b, "c").await.unwrap().unwrap().generation;
    rows.push((
        "delete with generation",
        count!(proxy, kv.delete(b, "c", Some(generation)).await.unwrap()),
        want.delete,
    ));
    // Refused before any request: bad options cost nothing.
    let zero = InsertOptions {
        time_to_live_sec: Some(0),
        ..plain(InsertMode::Overwrite)
    };
    rows.push((
        "insert, TTL 0 (refused)",
        count!(proxy, kv.insert(b, "z", b"v", &zero).await.unwrap_err()),
        0,
    ));

    println!("requests per extension call, kvplug-{backend}.wasm:");
    for (operation, requests, _) in &rows {
        println!("  {operation:<36} {requests}");
    }
    for (operation, requests, expected) in rows {
        assert_eq!(
            requests, expected,
            "{operation} took {requests} requests, expected {expected}"
        );
    }
    assert_eq!(kv.get(b, "k").await, Some(b"w".to_vec()));
    assert_eq!(kv.get(b, "c").await, None);
}

/// Instances that race: 4 apps, each with its own adapter instance.
const RACERS: usize = 4;

async fn racing_adds_have_one_winner_and_racing_appends_lose_nothing(service: &dyn Service) {
    let backend = service.backend();
    if !extended(backend) {
        assert!(
            EntriesKv::try_with(backend, service.settings())
                .await
                .is_err()
        );
        return;
    }
    // Every round, all instances `add` the same fresh key at once: exactly one wins, the
    // others are told the key exists, and the value is the winner's.
    for round in 0..5 {
        let key = format!("race-{round}");
        let mut racers = Vec::new();
        for racer in 0..RACERS {
            let settings = service.settings();
            let key = key.clone();
            racers.push(tokio::spawn(async move {
                let mut kv = EntriesKv::with(backend, settings).await;
                let b = kv.open("races").await;
                let outcome = kv
                    .insert(
                        b,
                        &key,
                        format!("{racer}").as_bytes(),
                        &InsertOptions::new(InsertMode::Add),
                    )
                    .await;
                (racer, outcome)
            }));
        }
        let mut winners = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                (racer, Ok(_)) => winners.push(racer),
                (_, Err(EntryError::PreconditionFailed(Precondition::KeyExists))) => {}
                (racer, Err(other)) => panic!("racer {racer}: {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let mut kv = EntriesKv::with(backend, service.settings()).await;
        let b = kv.open("races").await;
        assert_eq!(
            kv.get(b, &key).await,
            Some(winners[0].to_string().into_bytes()),
            "round {round}"
        );
    }

    // All instances append their own tokens to one key at once: none is lost or doubled.
    let appends = 8;
    let mut racers = Vec::new();
    for racer in 0..RACERS {
        let settings = service.settings();
        racers.push(tokio::spawn(async move {
            let mut kv = EntriesKv::with(backend, settings).await;
            let b = kv.open("races").await;
            for i in 0..appends {
                kv.insert(
                    b,
                    "log",
                    format!("<{racer}.{i}>").as_bytes(),
                    &InsertOptions::new(InsertMode::Append),
                )
                .await
                .unwrap();
            }
        }));
    }
    for racer in racers {
        racer.await.unwrap();
    }
    let mut kv = EntriesKv::with(backend, service.settings()).await;
    let b = kv.open("races").await;
    let log = String::from_utf8(kv.get(b, "log").await.unwrap()).unwrap();
    for racer in 0..RACERS {
        for i in 0..appends {
            let token = format!("<{racer}.{i}>");
            assert_eq!(log.matches(&token).count(), 1, "{token} in {log}");
        }
    }
    assert_eq!(log.len(), RACERS * appends * "<0.0>".len(), "{log}");
}
