//! Sizes of every artifact a user handles, and how long sealing and linking take.

use std::time::{Duration, Instant};

use anyhow::Result;
use kvplug_compose::{artifacts, plug, seal};

/// One artifact's size.
#[derive(Debug, Clone)]
pub struct Size {
    pub what: String,
    pub bytes: usize,
}

/// Timings of one step over several runs.
#[derive(Debug, Clone)]
pub struct Timing {
    pub what: String,
    pub runs: Vec<Duration>,
}

impl Timing {
    fn sorted(&self) -> Vec<Duration> {
        let mut runs = self.runs.clone();
        runs.sort();
        runs
    }

    /// The median run.
    pub fn median(&self) -> Duration {
        let runs = self.sorted();
        runs.get(runs.len() / 2).copied().unwrap_or_default()
    }

    /// The fastest and slowest runs.
    pub fn spread(&self) -> (Duration, Duration) {
        let runs = self.sorted();
        (
            runs.first().copied().unwrap_or_default(),
            runs.last().copied().unwrap_or_default(),
        )
    }
}

/// Everything measured here.
#[derive(Debug, Clone)]
pub struct Measured {
    pub sizes: Vec<Size>,
    pub timings: Vec<Timing>,
}

fn time<T>(runs: usize, mut step: impl FnMut() -> Result<T>) -> Result<(T, Vec<Duration>)> {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let value = step()?;
        times.push(started.elapsed());
        last = Some(value);
    }
    match last {
        Some(value) => Ok((value, times)),
        None => anyhow::bail!("no run"),
    }
}

/// Builds the artifacts, then seals and links `runs` times each.
pub fn measure(runs: usize) -> Result<Measured> {
    let built = artifacts::build_all()?;
    let read = |path: &std::path::Path| std::fs::read(path);
    let adapter = read(&artifacts::adapter_path("http"))?;
    let config = read(&artifacts::config_path("kvplug-config-static"))?;
    let app = read(&artifacts::fixture_path("example-app"))?;
    let request = seal::Request {
        settings: vec![
            ("url".into(), "https://kv.example.com:8443/api".into()),
            ("buckets".into(), "guestbook,notes".into()),
            ("timeout-ms".into(), "5000".into()),
        ],
        layered: false,
    };

    let (sealed, seal_runs) = time(runs, || seal::seal(&adapter, &config, &request))?;
    let (linked, link_runs) = time(runs, || {
        plug::plug_bytes(app.clone(), vec![adapter.clone()])
    })?;
    let (linked_sealed, link_sealed_runs) = time(runs, || {
        plug::plug_bytes(app.clone(), vec![sealed.adapter.clone()])
    })?;

    let mut sizes: Vec<Size> = built
        .adapters
        .iter()
        .chain(&built.configs)
        .chain(&built.shapes)
        .chain(&built.fixtures)
        .map(|(_, path)| {
            Ok(Size {
                what: path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                bytes: read(path)?.len(),
            })
        })
        .collect::<Result<_>>()?;
    sizes.push(Size {
        what: "config component, sealed with 3 settings".into(),
        bytes: sealed.config.len(),
    });
    sizes.push(Size {
        what: "kvplug-http.wasm sealed (imports only wasi:http)".into(),
        bytes: sealed.adapter.len(),
    });
    sizes.push(Size {
        what: "example-app + kvplug-http (linked)".into(),
        bytes: linked.len(),
    });
    sizes.push(Size {
        what: "example-app + sealed kvplug-http (linked)".into(),
        bytes: linked_sealed.len(),
    });
    Ok(Measured {
        sizes,
        timings: vec![
            Timing {
                what: "seal kvplug-http.wasm (validate, fill the config, plug, check)".into(),
                runs: seal_runs,
            },
            Timing {
                what: "link example-app + kvplug-http (`wac plug` semantics, in-process)".into(),
                runs: link_runs,
            },
            Timing {
                what: "link example-app + sealed kvplug-http".into(),
                runs: link_sealed_runs,
            },
        ],
    })
}
