//! The entries endpoints and expiry, against the real server on 127.0.0.1 with a clock the
//! test steps, so deadlines are crossed exactly instead of slept through.

#![expect(
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvplug_protocol::entries::{decode_metadata, encode_metadata};
use kvplug_protocol::names;
use kvplug_server::storage::Storage;
use kvplug_server::{Clock, Config, DATABASE_FILE, Server};

use common::request;

const START_MS: u64 = 1_800_000_000_000;

struct Harness {
    dir: tempfile::TempDir,
    server: Server,
    now: Arc<AtomicU64>,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn error(&self) -> Option<&str> {
        self.header("kvplug-error")
    }

    fn etag(&self) -> u64 {
        kvplug_protocol::parse_etag(self.header("etag").expect("an ETag")).expect("an issued ETag")
    }

    fn metadata(&self) -> Vec<u8> {
        self.header("kvplug-metadata")
            .map_or_else(Vec::new, |m| decode_metadata(m).unwrap())
    }
}

fn start_with(adjust: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let now = Arc::new(AtomicU64::new(START_MS));
    let mut config = Config::new(dir.path());
    let clock = Arc::clone(&now);
    config.clock = Clock::new(move || clock.load(Ordering::SeqCst));
    adjust(&mut config);
    let server = Server::start(config).unwrap();
    Harness { dir, server, now }
}

fn start() -> Harness {
    start_with(|_| {})
}

fn entry(key: &str) -> String {
    format!("/v1/buckets/b/entries/{}", names::encode(key))
}

fn plain(key: &str) -> String {
    format!("/v1/buckets/b/keys/{}", names::encode(key))
}

impl Harness {
    fn advance(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// One request on a fresh connection. `headers` are whole header lines.
    fn send(&self, method: &str, target: &str, headers: &[String], body: &[u8]) -> Answer {
        let mut head = format!("{method} {target} HTTP/1.1");
        for line in headers {
            head.push_str("\r\n");
            head.push_str(line);
        }
        let (status, headers, body) = request(&self.server.addr().to_string(), &head, body);
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "kvplug-protocol" && v == "1"),
            "{method} {target}"
        );
        Answer {
            status,
            headers,
            body,
        }
    }

    fn put(&self, key: &str, query: &str, headers: &[String], value: &[u8]) -> Answer {
        let target = if query.is_empty() {
            entry(key)
        } else {
            format!("{}?{query}", entry(key))
        };
        self.send("PUT", &target, headers, value)
    }

    /// An entries write that must succeed; its generation.
    fn insert(&self, key: &str, query: &str, headers: &[String], value: &[u8]) -> u64 {
        let answer = self.put(key, query, headers, value);
        assert_eq!(
            (answer.status, answer.error()),
            (200, None),
            "PUT {key}?{query}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.etag()
    }

    /// The live entry's (value, metadata, generation), or `None` (checked to be a 404
    /// `no-such-key`, from GET and HEAD alike).
    fn lookup(&self, key: &str) -> Option<(Vec<u8>, Vec<u8>, u64)> {
        let got = self.send("GET", &entry(key), &[], b"");
        let head = self.send("HEAD", &entry(key), &[], b"");
        match got.status {
            200 => {
                assert_eq!(head.status, 200);
                assert_eq!(head.etag(), got.etag());
                assert_eq!(head.metadata(), got.metadata());
                Some((got.body.clone(), got.metadata(), got.etag()))
            }
            404 => {
                assert_eq!(got.error(), Some("no-such-key"));
                assert_eq!((head.status, head.error()), (404, Some("no-such-key")));
                None
            }
            other => panic!("GET {key}: {other} {:?}", got.error()),
        }
    }

    /// Every key of the bucket through the plain listing, in pages of `limit`.
    fn keys(&self, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut target = format!("/v1/buckets/b?limit={limit}");
            if let Some(cursor) = &cursor {
                target.push_str(&format!("&cursor={}", names::encode(cursor)));
            }
            let answer = self.send("GET", &target, &[], b"");
            assert_eq!(answer.status, 200);
            let page = frames(&answer.body);
            assert!(page.len() <= limit);
            keys.extend(page);
            match answer.header("kvplug-cursor") {
                Some(next) => cursor = Some(next.to_owned()),
                None => return keys,
            }
        }
    }

    /// Every key with `prefix` through the entries listing, in pages of `limit`.
    fn entries_with(&self, prefix: &str, limit: usize) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut target = format!(
                "/v1/buckets/b/entries?prefix={}&limit={limit}",
                names::encode(prefix)
            );
            if let Some(cursor) = &cursor {
                target.push_str(&format!("&cursor={}", names::encode(cursor)));
            }
            let answer = self.send("GET", &target, &[], b"");
            assert_eq!(answer.status, 200, "{:?}", answer.error());
            let page = frames(&answer.body);
            assert!(page.len() <= limit, "a page of {} over {limit}", page.len());
            keys.extend(page);
            match answer.header("kvplug-cursor") {
                Some(next) => cursor = Some(next.to_owned()),
                None => return keys,
            }
        }
    }

    fn get_many(&self, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
        let mut body = Vec::new();
        for key in keys {
            kvplug_protocol::frames::put(&mut body, key.as_bytes()).unwrap();
        }
        let answer = self.send("POST", "/v1/buckets/b/get-many", &[], &body);
        assert_eq!(answer.status, 200);
        let mut reader = kvplug_protocol::frames::Reader::new(&answer.body);
        keys.iter()
            .map(|_| reader.optional().unwrap().map(<[u8]>::to_vec))
            .collect()
    }
}

fn frames(body: &[u8]) -> Vec<String> {
    let mut reader = kvplug_protocol::frames::Reader::new(body);
    let mut keys = Vec::new();
    while !reader.is_empty() {
        keys.push(reader.key().unwrap().to_owned());
    }
    keys
}

fn metadata_header(metadata: &[u8]) -> String {
    format!("kvplug-metadata: {}", encode_metadata(metadata))
}

fn if_match(generation: u64) -> String {
    format!("if-match: \"{generation}\"")
}

#[test]
fn metadata_round_trips_up_to_2000_bytes_and_no_further() {
    let h = start();
    h.insert("none", "", &[metadata_header(b"")], b"v");
    assert_eq!(h.lookup("none").unwrap().1, b"");
    let answer = h.send("GET", &entry("none"), &[], b"");
    assert_eq!(answer.header("kvplug-metadata"), None);

    let full: Vec<u8> = (0..2000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let generation = h.insert("full", "", &[metadata_header(&full)], b"v");
    assert_eq!(
        h.lookup("full"),
        Some((b"v".to_vec(), full.clone(), generation))
    );

    let over = vec![0xFF; 2001];
    let answer = h.put("full", "", &[metadata_header(&over)], b"w");
    assert_eq!(
        (answer.status, answer.error(), answer.header("kvplug-limit")),
        (413, Some("too-large"), Some("metadata=2000"))
    );
    let answer = h.put("new", "mode=add", &[metadata_header(&over)], b"w");
    assert_eq!(answer.status, 413);
    // Nothing was written.
    assert_eq!(h.lookup("full"), Some((b"v".to_vec(), full, generation)));
    assert_eq!(h.lookup("new"), None);
}

#[test]
fn every_write_changes_the_generation_and_if_match_decides() {
    let h = start();
    let mut seen = vec![h.insert("k", "", &[], b"1")];
    let answer = h.send("PUT", &plain("k"), &[], b"2");
    assert_eq!(answer.status, 204);
    seen.push(answer.etag());
    let answer = h.send("POST", &format!("{}?increment=1", plain("k")), &[], b"");
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"3"[..]));
    seen.push(answer.etag());
    let mut set_many = Vec::new();
    kvplug_protocol::frames::put(&mut set_many, b"k").unwrap();
    kvplug_protocol::frames::put(&mut set_many, b"4").unwrap();
    assert_eq!(
        h.send("POST", "/v1/buckets/b/set-many", &[], &set_many)
            .status,
        204
    );
    seen.push(h.lookup("k").unwrap().2);
    seen.push(h.insert("k", "mode=append", &[], b"5"));
    seen.push(h.insert("k", "mode=prepend", &[], b"3"));
    let mut distinct = seen.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), seen.len(), "{seen:?}");
    let current = *seen.last().unwrap();
    assert_eq!(h.lookup("k"), Some((b"345".to_vec(), vec![], current)));

    // If-Match: the stale generation loses and writes nothing; the current one wins.
    for mode in ["overwrite", "append", "prepend"] {
        let answer = h.put("k", &format!("mode={mode}"), &[if_match(seen[0])], b"x");
        assert_eq!(
            (answer.status, answer.error()),
            (412, Some("version-mismatch"))
        );
    }
    assert_eq!(h.lookup("k").unwrap().2, current);
    let won = h.insert("k", "mode=append", &[if_match(current)], b"6");
    assert_eq!(h.lookup("k"), Some((b"3456".to_vec(), vec![], won)));
    // An absent key matches no generation.
    let answer = h.put("absent", "", &[if_match(won)], b"x");
    assert_eq!(
        (answer.status, answer.error()),
        (412, Some("version-mismatch"))
    );
    assert_eq!(h.lookup("absent"), None);
    // The plain key path's CAS sees entries' generations as versions.
    let answer = h.send("PUT", &plain("k"), &[if_match(won)], b"7");
    assert_eq!(answer.status, 204);
}

#[test]
fn add_writes_absent_and_expired_keys_only() {
    let h = start();
    h.insert("k", "mode=add&ttl=5", &[], b"first");
    let answer = h.put("k", "mode=add", &[], b"second");
    assert_eq!((answer.status, answer.error()), (412, Some("key-exists")));
    assert_eq!(h.lookup("k").unwrap().0, b"first");
    h.advance(5000);
    assert_eq!(h.lookup("k"), None);
    h.insert("k", "mode=add", &[], b"third");
    assert_eq!(h.lookup("k").unwrap().0, b"third");
    // A deleted key is absent too.
    assert_eq!(h.send("DELETE", &entry("k"), &[], b"").status, 204);
    h.insert("k", "mode=add", &[], b"fourth");
}

#[test]
fn append_and_prepend_keep_expiry_and_metadata() {
    let h = start();
    // On an absent key: the bytes alone, and the given metadata.
    h.insert("a", "mode=append", &[metadata_header(b"m")], b"mid");
    assert_eq!(h.lookup("a").unwrap().0, b"mid");
    h.insert("p", "mode=prepend", &[], b"mid");
    h.send("DELETE", &entry("p"), &[], b"");
    h.insert("p", "mode=prepend", &[], b"mid");

    h.insert("a", "ttl=10", &[metadata_header(b"meta-a")], b"mid");
    h.insert("p", "ttl=20", &[metadata_header(b"meta-p")], b"mid");
    h.advance(1000);
    h.insert("a", "mode=append", &[], b">");
    h.insert("p", "mode=prepend", &[], b"<");
    assert_eq!(h.lookup("a").unwrap().0, b"mid>");
    assert_eq!(h.lookup("a").unwrap().1, b"meta-a");
    assert_eq!(h.lookup("p").unwrap().0, b"<mid");
    assert_eq!(h.lookup("p").unwrap().1, b"meta-p");
    // The deadlines did not move: 10 s and 20 s from the first write.
    h.advance(8999);
    assert!(h.lookup("a").is_some());
    h.advance(1);
    assert_eq!(h.lookup("a"), None);
    assert!(h.lookup("p").is_some());
    // Given metadata and TTL replace the kept ones; empty metadata clears.
    h.insert("p", "mode=append&ttl=100", &[metadata_header(b"")], b"!");
    assert_eq!(h.lookup("p").unwrap().0, b"<mid!");
    assert_eq!(h.lookup("p").unwrap().1, b"");
    h.advance(99_999);
    assert!(h.lookup("p").is_some());
    h.advance(1);
    assert_eq!(h.lookup("p"), None);
    // An expired value is not concatenated onto.
    let fresh = h.insert("p", "mode=append", &[], b"fresh");
    assert_eq!(h.lookup("p"), Some((b"fresh".to_vec(), vec![], fresh)));
}

#[test]
fn overwrite_clears_metadata_and_expiry() {
    let h = start();
    h.insert("k", "ttl=1", &[metadata_header(b"m")], b"1");
    h.insert("k", "mode=overwrite", &[], b"2");
    h.advance(10_000);
    assert_eq!(
        h.lookup("k").map(|e| (e.0, e.1)),
        Some((b"2".to_vec(), vec![]))
    );
}

#[test]
fn an_expired_entry_is_absent_on_every_path() {
    let h = start();
    for key in [
        "get",
        "cas",
        "none-match",
        "counter",
        "deleted",
        "plain-deleted",
    ] {
        h.insert(key, "ttl=5", &[], b"41");
    }
    let cas = h.lookup("cas").unwrap().2;
    h.send("PUT", &plain("stays"), &[], b"s");
    h.advance(4999);
    assert!(h.lookup("get").is_some());
    assert_eq!(h.keys(2).len(), 7);
    h.advance(1);

    for key in ["get", "cas", "counter"] {
        for method in ["GET", "HEAD"] {
            let answer = h.send(method, &plain(key), &[], b"");
            assert_eq!((answer.status, answer.error()), (404, Some("no-such-key")));
        }
        assert_eq!(h.lookup(key), None);
    }
    assert_eq!(h.keys(2), ["stays"]);
    assert_eq!(h.entries_with("", 1), ["stays"]);
    assert_eq!(
        h.get_many(&["get", "stays", "cas"]),
        [None, Some(b"s".to_vec()), None]
    );

    // If-Match of the expired generation fails with what is stored now: nothing.
    let answer = h.send("PUT", &plain("cas"), &[if_match(cas)], b"x");
    assert_eq!((answer.status, answer.header("etag")), (412, None));
    assert!(answer.body.is_empty());
    for mode in ["overwrite", "append", "prepend"] {
        let answer = h.put("cas", &format!("mode={mode}"), &[if_match(cas)], b"x");
        assert_eq!(
            (answer.status, answer.error()),
            (412, Some("version-mismatch"))
        );
    }
    assert_eq!(h.lookup("cas"), None);
    let answer = h.send(
        "PUT",
        &plain("none-match"),
        &["if-none-match: *".to_owned()],
        b"x",
    );
    assert_eq!(answer.status, 204);
    assert_eq!(h.lookup("none-match").unwrap().0, b"x");

    // increment starts from 0, and the new counter does not inherit the old deadline.
    let answer = h.send(
        "POST",
        &format!("{}?increment=1", plain("counter")),
        &[],
        b"",
    );
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"1"[..]));
    h.advance(1_000_000);
    assert_eq!(h.lookup("counter").unwrap().0, b"1");

    // Deleting an expired entry deletes nothing live.
    let answer = h.send("DELETE", &entry("deleted"), &[], b"");
    assert_eq!(
        (answer.status, answer.header("kvplug-deleted")),
        (204, Some("0"))
    );
    assert_eq!(
        h.send("DELETE", &plain("plain-deleted"), &[], b"").status,
        204
    );
    assert_eq!(h.lookup("plain-deleted"), None);
}

#[test]
fn delete_reports_and_checks_generations() {
    let h = start();
    let first = h.insert("k", "", &[], b"1");
    let second = h.insert("k", "", &[], b"2");
    let answer = h.send("DELETE", &entry("k"), &[if_match(first)], b"");
    assert_eq!(
        (answer.status, answer.error()),
        (412, Some("version-mismatch"))
    );
    assert!(h.lookup("k").is_some());
    let answer = h.send("DELETE", &entry("k"), &[if_match(second)], b"");
    assert_eq!(
        (answer.status, answer.header("kvplug-deleted")),
        (204, Some("1"))
    );
    let answer = h.send("DELETE", &entry("k"), &[], b"");
    assert_eq!(
        (answer.status, answer.header("kvplug-deleted")),
        (204, Some("0"))
    );
    let answer = h.send("DELETE", &entry("k"), &[if_match(second)], b"");
    assert_eq!(answer.status, 412);
}

#[test]
fn plain_writes_drop_metadata_and_expiry_and_increment_keeps_them() {
    let h = start();
    h.insert("n", "ttl=10", &[metadata_header(b"counter")], b"5");
    let answer = h.send("POST", &format!("{}?increment=2", plain("n")), &[], b"");
    assert_eq!(answer.body, b"7");
    assert_eq!(
        h.lookup("n"),
        Some((b"7".to_vec(), b"counter".to_vec(), answer.etag()))
    );
    h.advance(9999);
    assert!(h.lookup("n").is_some());
    h.advance(1);
    assert_eq!(h.lookup("n"), None);

    h.insert("p", "ttl=10", &[metadata_header(b"m")], b"v");
    assert_eq!(h.send("PUT", &plain("p"), &[], b"plain").status, 204);
    let mut set_many = Vec::new();
    h.insert("s", "ttl=10", &[metadata_header(b"m")], b"v");
    kvplug_protocol::frames::put(&mut set_many, b"s").unwrap();
    kvplug_protocol::frames::put(&mut set_many, b"plain").unwrap();
    assert_eq!(
        h.send("POST", "/v1/buckets/b/set-many", &[], &set_many)
            .status,
        204
    );
    h.advance(1_000_000);
    for key in ["p", "s"] {
        assert_eq!(
            h.lookup(key).map(|e| (e.0, e.1)),
            Some((b"plain".to_vec(), vec![]))
        );
    }
    // A later append finds no metadata or expiry to keep.
    h.insert("p", "mode=append", &[], b"+");
    h.advance(1_000_000);
    assert_eq!(
        h.lookup("p").map(|e| (e.0, e.1)),
        Some((b"plain+".to_vec(), vec![]))
    );
}

#[test]
fn the_sweeper_deletes_expired_rows() {
    let h = start_with(|config| config.durable = false);
    // More than one sweep batch (1000).
    for i in 0..1200 {
        h.insert(&format!("e{i:04}"), "ttl=1", &[metadata_header(b"m")], b"v");
    }
    h.insert("forever", "", &[metadata_header(b"")], b"v");
    // A plain PUT leaves a stale EXTRA row and its EXPIRY row behind.
    h.insert("stale", "ttl=1", &[metadata_header(b"m")], b"v");
    assert_eq!(h.send("PUT", &plain("stale"), &[], b"kept").status, 204);

    let deadline = START_MS + 1000;
    let started = Instant::now();
    loop {
        h.now.store(deadline, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        // Back before the deadline: whatever is still listed was not swept yet.
        h.now.store(deadline - 1, Ordering::SeqCst);
        let left = h.entries_with("e", 10_000).len();
        if left == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{left} entries never swept"
        );
    }
    assert_eq!(h.keys(1000), ["forever", "stale"]);
    let Harness { dir, server, .. } = h;
    server.stop();
    // The server's last tasks may hold the database for a moment after it stops.
    let storage = loop {
        match Storage::open(&dir.path().join(DATABASE_FILE), false, Clock::system()) {
            Ok(storage) => break storage,
            Err(e) if started.elapsed() < Duration::from_secs(60) => {
                eprintln!("reopening: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        storage.row_counts().unwrap(),
        (2, 0, 0),
        "(entries, extra, expiry)"
    );
}

#[test]
fn prefix_listing_pages_each_live_key_once() {
    let h = start();
    let keys = [
        "",
        "#",
        "#1",
        "#2",
        "%",
        "%a",
        "%b/",
        "/",
        "/x",
        "a",
        "a%/é語#",
        "a%/é語#z",
        "a%/x",
        "é",
        "é1",
        "éé",
        "語",
        "語a",
        "語b",
        "語語",
        "z",
    ];
    for key in keys {
        h.insert(key, "", &[], b"v");
    }
    h.insert("語gone", "ttl=1", &[], b"v");
    h.insert("%gone", "ttl=1", &[], b"v");
    h.advance(1000);
    for prefix in [
        "",
        "#",
        "%",
        "/",
        "a%/",
        "a%/é語#",
        "é",
        "語",
        "語語",
        "nothing",
    ] {
        let mut expected: Vec<String> = keys
            .iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| (*k).to_owned())
            .collect();
        // Key order is byte order.
        expected.sort();
        for limit in [1, 2, 3, 1000] {
            assert_eq!(
                h.entries_with(prefix, limit),
                expected,
                "{prefix:?} by {limit}"
            );
        }
    }
    // Without a prefix the query may leave it out.
    let answer = h.send("GET", "/v1/buckets/b/entries?limit=2", &[], b"");
    assert_eq!(frames(&answer.body), ["", "#"]);

    // A cursor belongs to its prefix (and bucket).
    let answer = h.send("GET", "/v1/buckets/b/entries?prefix=%25&limit=1", &[], b"");
    let cursor = names::encode(answer.header("kvplug-cursor").unwrap());
    for target in [
        format!("/v1/buckets/b/entries?prefix=%25a&cursor={cursor}"),
        format!("/v1/buckets/b/entries?cursor={cursor}"),
        format!("/v1/buckets/c/entries?prefix=%25&cursor={cursor}"),
        "/v1/buckets/b/entries?cursor=nonsense".to_owned(),
    ] {
        let answer = h.send("GET", &target, &[], b"");
        assert_eq!(
            (answer.status, answer.error()),
            (400, Some("bad-cursor")),
            "{target}"
        );
    }
    let answer = h.send(
        "GET",
        &format!("/v1/buckets/b/entries?prefix=%25&cursor={cursor}"),
        &[],
        b"",
    );
    assert_eq!(frames(&answer.body), ["%a", "%b/"]);
    let answer = h.send("GET", "/v1/buckets/b/entries?prefix=%zz", &[], b"");
    assert_eq!((answer.status, answer.error()), (400, Some("bad-name")));
    let answer = h.send("GET", "/v1/buckets/b/entries?limit=0", &[], b"");
    assert_eq!((answer.status, answer.error()), (400, Some("bad-request")));
}

#[test]
fn concurrent_adds_have_exactly_one_winner() {
    let h = Arc::new(start());
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (h, barrier) = (Arc::clone(&h), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let answer = h.put("race", "mode=add", &[], format!("v{i}").as_bytes());
                (i, answer.status, answer.error().map(str::to_owned))
            })
        })
        .collect();
    let outcomes: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let winners: Vec<_> = outcomes.iter().filter(|o| o.1 == 200).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for (_, status, code) in &outcomes {
        assert!(
            *status == 200 || (*status == 412 && code.as_deref() == Some("key-exists")),
            "{outcomes:?}"
        );
    }
    assert_eq!(
        h.lookup("race").unwrap().0,
        format!("v{}", winners[0].0).into_bytes()
    );
}

#[test]
fn malformed_entry_requests_are_refused_and_write_nothing() {
    let h = start_with(|config| config.max_body = 64);
    let cases: &[(&str, &[String], u16, &str)] = &[
        ("mode=upsert", &[], 400, "bad-request"),
        ("ttl=soon", &[], 400, "bad-ttl"),
        ("ttl=0", &[], 400, "bad-ttl"),
        ("ttl=-1", &[], 400, "bad-ttl"),
        ("ttl=4294967296", &[], 400, "bad-ttl"),
        ("mode=append&ttl=0", &[], 400, "bad-ttl"),
        (
            "",
            &["kvplug-metadata: not*base64".to_owned()],
            400,
            "bad-request",
        ),
        ("", &["if-match: 7".to_owned()], 400, "bad-request"),
        ("", &["if-none-match: *".to_owned()], 400, "bad-request"),
        (
            "mode=add",
            &["if-match: \"1\"".to_owned()],
            400,
            "bad-request",
        ),
    ];
    for (query, headers, status, code) in cases {
        let answer = h.put("k", query, headers, b"v");
        assert_eq!(
            (answer.status, answer.error()),
            (*status, Some(*code)),
            "{query} {headers:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        if *code == "bad-ttl" {
            assert_eq!(answer.header("kvplug-ttl-range"), Some("1-4294967295"));
        }
    }
    assert_eq!(h.lookup("k"), None);
    let longest = h.insert("k", "ttl=4294967295", &[], b"v");
    assert_eq!(h.lookup("k").unwrap().2, longest);

    // The value limit counts the concatenation, checked inside the write.
    h.insert("big", "", &[], &[b'a'; 60]);
    let answer = h.put("big", "mode=append", &[], b"12345");
    assert_eq!(
        (answer.status, answer.error(), answer.header("kvplug-limit")),
        (413, Some("too-large"), Some("value=64"))
    );
    assert!(String::from_utf8_lossy(&answer.body).contains("65 bytes"));
    h.insert("big", "mode=prepend", &[], b"1234");
    assert_eq!(h.lookup("big").unwrap().0.len(), 64);
    let answer = h.put("other", "", &[], &[0; 65]);
    assert_eq!(
        (answer.status, answer.header("kvplug-limit")),
        (413, Some("value=64"))
    );
    assert_eq!(h.lookup("other"), None);

    let answer = h.send("HEAD", "/v1/buckets/b", &[], b"");
    assert_eq!(
        (
            answer.status,
            answer.header("kvplug-entries"),
            answer.header("kvplug-max-value")
        ),
        (204, Some("1"), Some("64"))
    );
    let answer = h.send("POST", &entry("k"), &[], b"");
    assert_eq!(answer.status, 405);
    let answer = h.send("GET", "/v1/buckets/b/entries/k/more", &[], b"");
    assert_eq!((answer.status, answer.error()), (404, Some("not-found")));
}
