//! The change feed (`GET /v1/buckets/{b}/changes`), against the real server on 127.0.0.1:
//! every write is one change in commit order with its value, a long poll wakes on a write,
//! retention drops the oldest with a clear answer, and positions survive a restart.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvplug_protocol::changes;
use kvplug_protocol::frames::{self, Reader};
use kvplug_server::{Clock, Config, Server};

use common::request;

fn start(dir: &std::path::Path, retention: u64, clock: Clock) -> Server {
    let mut config = Config::new(dir.join("data"));
    config.feed_retention.changes = retention;
    config.clock = clock;
    Server::start(config).unwrap()
}

fn addr(server: &Server) -> String {
    server.url().trim_start_matches("http://").to_owned()
}

/// A change as the test compares it: key, value (`None`: deleted).
type Seen = (String, Option<Vec<u8>>);

struct Page {
    status: u16,
    position: Option<u64>,
    resume_after: Option<u64>,
    changes: Vec<(u64, Seen)>,
}

fn read(server: &Server, bucket: &str, query: &str) -> Page {
    let path = changes::changes_path(bucket);
    let (status, headers, body) =
        request(&addr(server), &format!("GET {path}{query} HTTP/1.1"), b"");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.parse().ok())
    };
    let mut changes = Vec::new();
    if status == 200 {
        let mut reader = Reader::new(&body);
        while !reader.is_empty() {
            let change = changes::read(&mut reader).unwrap();
            changes.push((
                change.position,
                (change.key.to_owned(), change.value.map(<[u8]>::to_vec)),
            ));
        }
    }
    Page {
        status,
        position: header(changes::HEADER_POSITION),
        resume_after: header(changes::HEADER_RESUME_AFTER),
        changes,
    }
}

fn send(server: &Server, head: &str, body: &[u8]) -> u16 {
    request(&addr(server), &format!("{head} HTTP/1.1"), body).0
}

fn put(server: &Server, bucket: &str, key: &str, value: &[u8]) {
    let path = kvplug_protocol::key_path(bucket, key);
    assert_eq!(send(server, &format!("PUT {path}"), value), 204);
}

fn seen(key: &str, value: Option<&[u8]>) -> Seen {
    (key.to_owned(), value.map(<[u8]>::to_vec))
}

#[test]
fn every_write_is_one_change_in_commit_order_with_its_value() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 1000, Clock::system());
    let start_at = read(&server, "b", "").position.unwrap();

    put(&server, "b", "a", b"1");
    put(&server, "other", "a", b"not ours");
    let entry = kvplug_protocol::entries::entry_path("b", "e");
    assert_eq!(
        send(&server, &format!("PUT {entry}?mode=append"), b"x"),
        200
    );
    assert_eq!(
        send(&server, &format!("PUT {entry}?mode=append"), b"y"),
        200
    );
    let key = kvplug_protocol::key_path("b", "n");
    assert_eq!(send(&server, &format!("POST {key}?increment=5"), b""), 200);
    let mut batch = Vec::new();
    for (k, v) in [("s1", "v1"), ("s2", "v2")] {
        frames::put(&mut batch, k.as_bytes()).unwrap();
        frames::put(&mut batch, v.as_bytes()).unwrap();
    }
    let path = kvplug_protocol::batch_path("b", kvplug_protocol::BatchOp::SetMany);
    assert_eq!(send(&server, &format!("POST {path}"), &batch), 204);
    // A delete of a key that holds nothing changes nothing, so it is not a change.
    let absent = kvplug_protocol::key_path("b", "never");
    assert_eq!(send(&server, &format!("DELETE {absent}"), b""), 204);
    let a = kvplug_protocol::key_path("b", "a");
    assert_eq!(send(&server, &format!("DELETE {a}"), b""), 204);
    // A compare-and-swap that loses writes nothing.
    let (status, _, _) = request(
        &addr(&server),
        &format!("PUT {key} HTTP/1.1\r\nif-match: \"1\""),
        b"9",
    );
    assert_eq!(status, 412);

    let page = read(&server, "b", &format!("?after={start_at}"));
    assert_eq!(page.status, 200);
    let got: Vec<Seen> = page.changes.iter().map(|(_, c)| c.clone()).collect();
    assert_eq!(
        got,
        [
            seen("a", Some(b"1")),
            seen("e", Some(b"x")),
            seen("e", Some(b"xy")),
            seen("n", Some(b"5")),
            seen("s1", Some(b"v1")),
            seen("s2", Some(b"v2")),
            seen("a", None),
        ]
    );
    let positions: Vec<u64> = page.changes.iter().map(|(p, _)| *p).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(positions[0] > start_at);
    // Nothing is left after the position the page gives.
    let rest = read(&server, "b", &format!("?after={}", page.position.unwrap()));
    assert!(rest.changes.is_empty());
    assert_eq!(rest.position, page.position);
    // The other bucket has only its own change.
    let other = read(&server, "other", &format!("?after={start_at}"));
    assert_eq!(
        other
            .changes
            .iter()
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>(),
        [seen("a", Some(b"not ours"))]
    );
}

#[test]
fn pages_hold_at_most_the_limit_and_continue_where_they_stop() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 1000, Clock::system());
    let mut position = read(&server, "b", "").position.unwrap();
    for i in 0..7 {
        put(&server, "b", &format!("k{i}"), b"v");
    }
    let mut keys = Vec::new();
    loop {
        let page = read(&server, "b", &format!("?after={position}&limit=3"));
        assert!(page.changes.len() <= 3);
        if page.changes.is_empty() {
            break;
        }
        keys.extend(page.changes.into_iter().map(|(_, (k, _))| k));
        position = page.position.unwrap();
    }
    assert_eq!(keys, (0..7).map(|i| format!("k{i}")).collect::<Vec<_>>());
    assert_eq!(read(&server, "b", "?after=x").status, 400);
    assert_eq!(read(&server, "b", "?after=0&limit=0").status, 400);
}

#[test]
fn a_long_poll_wakes_on_a_write_and_otherwise_waits_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(start(dir.path(), 1000, Clock::system()));
    let head = read(&server, "b", "").position.unwrap();

    let started = Instant::now();
    let idle = read(&server, "b", &format!("?after={head}&wait=400"));
    let waited = started.elapsed();
    assert!(idle.changes.is_empty());
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    let writer = Arc::clone(&server);
    let write = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        put(&writer, "other", "x", b"not ours");
        std::thread::sleep(Duration::from_millis(300));
        put(&writer, "b", "k", b"v");
        Instant::now()
    });
    let page = read(&server, "b", &format!("?after={head}&wait=20000"));
    let answered = Instant::now();
    let written = write.join().unwrap();
    assert_eq!(
        page.changes
            .iter()
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>(),
        [seen("k", Some(b"v"))]
    );
    // It answered right after the write, not at the end of its wait, and a write to another
    // bucket did not end it empty.
    let latency = answered.saturating_duration_since(written);
    assert!(latency < Duration::from_secs(2), "{latency:?}");
}

#[test]
fn retention_drops_the_oldest_and_says_where_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 5, Clock::system());
    let head = read(&server, "b", "").position.unwrap();
    for i in 0..10 {
        put(&server, "b", &format!("k{i}"), b"v");
    }
    let gone = read(&server, "b", &format!("?after={head}"));
    assert_eq!(gone.status, 410);
    let resume = gone.resume_after.unwrap();
    let page = read(&server, "b", &format!("?after={resume}"));
    assert_eq!(page.status, 200);
    assert_eq!(
        page.changes
            .iter()
            .map(|(_, (k, _))| k.as_str())
            .collect::<Vec<_>>(),
        ["k5", "k6", "k7", "k8", "k9"]
    );
}

#[test]
fn retention_bounds_the_bytes_of_values_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("data"));
    config.feed_retention.bytes = 10_000;
    let server = Server::start(config).unwrap();
    let head = read(&server, "b", "").position.unwrap();
    for i in 0..5 {
        put(&server, "b", &format!("k{i}"), &[b'v'; 4000]);
    }
    // Two values fit in 10,000 bytes; the oldest three are dropped.
    let gone = read(&server, "b", &format!("?after={head}"));
    assert_eq!(gone.status, 410);
    let page = read(
        &server,
        "b",
        &format!("?after={}", gone.resume_after.unwrap()),
    );
    assert_eq!(
        page.changes
            .iter()
            .map(|(_, (k, _))| k.as_str())
            .collect::<Vec<_>>(),
        ["k3", "k4"]
    );
    // A value larger than the whole bound is still kept, alone; a reader that had read
    // everything before it loses nothing.
    put(&server, "b", "big", &[b'v'; 20_000]);
    let page = read(&server, "b", &format!("?after={}", page.position.unwrap()));
    assert_eq!(page.status, 200);
    assert_eq!(page.changes.len(), 1);
    assert_eq!(page.changes[0].1.0, "big");
    assert_eq!(read(&server, "b", &format!("?after={head}")).status, 410);
}

#[test]
fn positions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), 1000, Clock::system());
    let head = read(&server, "b", "").position.unwrap();
    put(&server, "b", "before", b"1");
    drop(server);
    let server = start(dir.path(), 1000, Clock::system());
    put(&server, "b", "after", b"2");
    let page = read(&server, "b", &format!("?after={head}"));
    assert_eq!(
        page.changes
            .iter()
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>(),
        [seen("before", Some(b"1")), seen("after", Some(b"2"))]
    );
}

#[test]
fn an_expired_entry_is_a_delete_once_swept() {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(1_800_000_000_000));
    let clock_now = Arc::clone(&now);
    let server = start(
        dir.path(),
        1000,
        Clock::new(move || clock_now.load(Ordering::SeqCst)),
    );
    let head = read(&server, "b", "").position.unwrap();
    let entry = kvplug_protocol::entries::entry_path("b", "session");
    assert_eq!(send(&server, &format!("PUT {entry}?ttl=1"), b"s"), 200);
    now.fetch_add(1000, Ordering::SeqCst);
    // The sweeper runs about once a second; a long poll sees its delete.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut position = head;
    while got.len() < 2 && Instant::now() < deadline {
        let page = read(&server, "b", &format!("?after={position}&wait=3000"));
        position = page.position.unwrap();
        got.extend(page.changes.into_iter().map(|(_, c)| c));
    }
    assert_eq!(got, [seen("session", Some(b"s")), seen("session", None)]);
}
