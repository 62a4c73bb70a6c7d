//! HTTP requests per `wasi:keyvalue` call, counted by the reference server, next to the
//! limit each should meet.

use anyhow::{Result, anyhow};

fn fail(error: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("{error:?}")
}
use kvplug_server::Server;
use kvplug_tests::Kv;

/// `(operation, requests, limit)`.
pub type Row = (&'static str, u64, u64);

/// Calls every operation once through `kvplug-http.wasm` and counts.
pub async fn count(server: &Server) -> Result<Vec<Row>> {
    let mut kv = Kv::new(vec![("url".into(), server.url())]).await;
    let mut rows = Vec::new();
    let before = server.requests();
    let b = kv.open("requests").await.map_err(fail)?;
    rows.push(("open", server.requests() - before, 1));
    macro_rules! row {
        ($name:expr, $limit:expr, $call:expr) => {{
            let before = server.requests();
            $call.map_err(fail)?;
            rows.push(($name, server.requests() - before, $limit));
        }};
    }
    let keys: Vec<String> = (0..2500).map(|i| format!("k{i}")).collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let pairs: Vec<(&str, &[u8])> = refs.iter().map(|k| (*k, &b"v"[..])).collect();
    row!("set", 1, kv.set(b, "k", b"v").await);
    row!("get", 1, kv.get(b, "k").await);
    row!("get (missing key)", 1, kv.get(b, "missing").await);
    row!("exists", 1, kv.exists(b, "k").await);
    row!("delete", 1, kv.delete(b, "k").await);
    row!("increment", 1, kv.increment(b, "n", 1).await);
    let cas = kv.cas_new(b, "n").await.map_err(fail)?;
    row!("swap", 1, kv.swap(cas, b"7").await);
    row!("set-many (2500 pairs)", 3, kv.set_many(b, &pairs).await);
    row!("get-many (2500 keys)", 3, kv.get_many(b, &refs).await);
    row!(
        "list-keys (one page of 1000)",
        1,
        kv.list_keys(b, None).await
    );
    row!("delete-many (2500 keys)", 3, kv.delete_many(b, &refs).await);
    Ok(rows)
}
