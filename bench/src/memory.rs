//! How much linear memory the adapter needs for large values: the adapter alone is
//! instantiated (no application), so what grows is its own memory.

use anyhow::{Result, anyhow};

fn fail(error: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("{error:?}")
}
use kvplug_compose::artifacts;
use kvplug_runner::Runtime;
use kvplug_tests::Kv;

/// The adapter's linear memory right after `open`, and after a `set` and a `get` of `size`.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub size: usize,
    pub after_open: usize,
    pub peak: usize,
}

pub async fn measure(url: &str, size: usize) -> Result<Memory> {
    let runtime = Runtime::adapter_only()?;
    let adapter = runtime.load(&artifacts::adapter_path("http"))?;
    let mut kv = Kv::on(&runtime, &adapter, vec![("url".into(), url.into())]).await;
    let b = kv.open("memory").await.map_err(fail)?;
    let after_open = kv.linear_memory();
    let value = vec![7u8; size];
    kv.set(b, "big", &value).await.map_err(fail)?;
    let got = kv.get(b, "big").await.map_err(fail)?;
    if got.map(|v| v.len()) != Some(size) {
        return Err(anyhow!("the value came back wrong"));
    }
    Ok(Memory {
        size,
        after_open,
        peak: kv.linear_memory(),
    })
}
