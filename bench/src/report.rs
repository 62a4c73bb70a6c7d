//! The results file: machine, versions, date, then one table per measurement.

use std::fmt::Write as _;

use crate::artifacts::Measured;
use crate::memory::Memory;
use crate::timing::{Client, Plan, Sample};

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The commit the `before #13` column was measured at (`kvplug build`, profile
/// `wasm-release`): the last one before issue #13's backend core.
const BEFORE_CORE_COMMIT: &str = "9434f66";

/// Adapter sizes at [`BEFORE_CORE_COMMIT`], in bytes.
const BEFORE_CORE: [(&str, usize); 5] = [
    ("kvplug-http.wasm", 135_943),
    ("kvplug-etcd.wasm", 160_993),
    ("kvplug-redis.wasm", 153_597),
    ("kvplug-dynamodb.wasm", 194_755),
    ("kvplug-azure-table.wasm", 200_412),
];

/// What machine this ran on, in one line.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "? GiB".into(),
            |kb| format!("{:.0} GiB", kb as f64 / 1048576.0),
        );
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "{cores} cores ({cpu}), {memory}, {}",
        command_line("uname", &["-sr"])
    )
}

fn ms(d: std::time::Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// Everything a benchmark run produced.
pub struct Results {
    pub artifacts: Measured,
    pub artifact_runs: usize,
    /// The backends section (`backends::measure`).
    pub backends: String,
    pub plan: Plan,
    pub samples: Vec<Sample>,
    pub memory: Option<Memory>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Per-round ratios `a / b` of op time at `size`: median, min and max.
fn ratio(samples: &[Sample], size: usize, a: Client, b: Client) -> Option<(f64, f64, f64)> {
    let pick = |client: Client, round: usize| {
        samples
            .iter()
            .find(|s| s.client == client && s.size == size && s.round == round)
            .map(Sample::op_us)
    };
    let rounds = samples.iter().map(|s| s.round).max()? + 1;
    let ratios: Vec<f64> = (0..rounds)
        .filter_map(|round| Some(pick(a, round)? / pick(b, round)?))
        .collect();
    if ratios.is_empty() {
        return None;
    }
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ratios.iter().copied().fold(0.0, f64::max);
    Some((median(ratios), min, max))
}

pub fn timing_section(out: &mut String, plan: &Plan, samples: &[Sample]) {
    let _ = writeln!(out, "\n## Time per operation\n");
    let _ = writeln!(
        out,
        "Each run does N `set`s, then N `get`s of the same keys; an *op* is the mean of one set \
         and one get. {} interleaved rounds, the client order rotating each round; figures are \
         medians over rounds, ratios are taken round by round (median [min–max]). Everything \
         talks to one in-process kvplug-server on 127.0.0.1 with `fsync` off, so that the HTTP \
         path, not the disk, is measured. wasmtime's default client opens a new connection per request \
         (emb-pool sends through kvplug-http-pool instead); jco keeps connections alive.\n",
        plan.rounds
    );
    let _ = writeln!(out, "| client | what |\n|---|---|");
    for client in &plan.clients {
        let _ = writeln!(out, "| {} | {} |", client.name(), client.describe());
    }
    for &(size, n) in &plan.sizes {
        let _ = writeln!(out, "\n### {} values (N = {n})\n", size_name(size));
        let _ = writeln!(
            out,
            "| client | set µs | get µs | op µs | op µs min–max |\n|---|---:|---:|---:|---|"
        );
        for &client in &plan.clients {
            let runs: Vec<&Sample> = samples
                .iter()
                .filter(|s| s.client == client && s.size == size)
                .collect();
            if runs.is_empty() {
                continue;
            }
            let per = |d: fn(&Sample) -> std::time::Duration| {
                median(
                    runs.iter()
                        .map(|s| d(s).as_secs_f64() * 1e6 / s.n as f64)
                        .collect(),
                )
            };
            let ops: Vec<f64> = runs.iter().map(|s| s.op_us()).collect();
            let min = ops.iter().copied().fold(f64::INFINITY, f64::min);
            let max = ops.iter().copied().fold(0.0, f64::max);
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | **{:.1}** | {min:.1}–{max:.1} |",
                client.name(),
                per(|s| s.set),
                per(|s| s.get),
                median(ops.clone())
            );
        }
    }
    let _ = writeln!(out, "\n### Ratios\n");
    let mut header = String::from("| ratio |");
    let mut rule = String::from("|---|");
    for &(size, _) in &plan.sizes {
        header.push_str(&format!(" {} |", size_name(size)));
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header} goal |\n{rule}---|");
    let rows = [
        (
            Client::EmbeddedKv,
            Client::EmbeddedHttp,
            "adapter overhead, embedded",
            "≤ 1.02 up to 64 KiB, ≤ 1.05 at 4 MiB",
        ),
        (
            Client::CliKv,
            Client::CliHttp,
            "adapter overhead, wasmtime CLI",
            "≤ 1.02 up to 64 KiB, ≤ 1.05 at 4 MiB",
        ),
        (
            Client::EmbeddedKv,
            Client::NativeNew,
            "embedded vs native, same connection policy",
            "≤ 1.0",
        ),
        (
            Client::EmbeddedHttp,
            Client::NativeNew,
            "the runtime's own wasi:http vs native, no adapter",
            "the floor for the row above",
        ),
        (
            Client::CliKv,
            Client::NativeNew,
            "CLI vs native, same connection policy",
            "≤ 1.0",
        ),
        (
            Client::EmbeddedKv,
            Client::NativeKeepAlive,
            "embedded vs native keep-alive",
            "for reference",
        ),
        (
            Client::EmbeddedPooled,
            Client::NativeKeepAlive,
            "kvplug-http-pool vs native keep-alive",
            "≤ 1.05",
        ),
        (
            Client::EmbeddedHttpPooled,
            Client::NativeKeepAlive,
            "the runtime's own wasi:http through kvplug-http-pool vs native keep-alive, no adapter",
            "the floor for the row above",
        ),
        (
            Client::EmbeddedHttpPooled,
            Client::EmbeddedHttpReference,
            "kvplug-http-pool vs hyper-util's pooled Client, no adapter",
            "≤ 1.0",
        ),
        (
            Client::EmbeddedPooled,
            Client::EmbeddedHttpPooled,
            "adapter overhead on kept-alive connections",
            "for information",
        ),
        (
            Client::EmbeddedKv,
            Client::EmbeddedPooled,
            "wasmtime's default client vs kvplug-http-pool",
            "≥ 1.5",
        ),
        (
            Client::Jco,
            Client::CliKv,
            "jco vs wasmtime CLI",
            "for information",
        ),
    ];
    for (a, b, what, goal) in rows {
        let mut line = format!("| {} / {} ({what}) |", a.name(), b.name());
        for &(size, _) in &plan.sizes {
            match ratio(samples, size, a, b) {
                Some((m, lo, hi)) => line.push_str(&format!(" {m:.2} [{lo:.2}–{hi:.2}] |")),
                None => line.push_str(" – |"),
            }
        }
        let _ = writeln!(out, "{line} {goal} |");
    }
}

/// The markdown report.
pub fn render(results: &Results) -> String {
    let mut out = render_artifacts(&results.artifacts, results.artifact_runs);
    out.push_str(&results.backends);
    timing_section(&mut out, &results.plan, &results.samples);
    if let Some(memory) = results.memory {
        let mib = |b: usize| b as f64 / (1 << 20) as f64;
        let _ = writeln!(
            out,
            "\n## Adapter linear memory for {} values\n",
            size_name(memory.size)
        );
        let _ = writeln!(
            out,
            "The adapter alone, driven through its exports: its linear memory after `open`, and after \
             a `set` and a `get` of one value (memories never shrink, so this is the peak).\n"
        );
        let _ = writeln!(
            out,
            "| after open | after set + get | growth / value | goal |\n|---:|---:|---:|---|"
        );
        let growth = (memory.peak - memory.after_open) as f64 / memory.size as f64;
        let _ = writeln!(
            out,
            "| {:.2} MiB | {:.2} MiB | {growth:.2}× | ≤ 2× ({}) |",
            mib(memory.after_open),
            mib(memory.peak),
            if growth <= 2.0 { "met" } else { "not met" }
        );
    }
    out
}

/// The artifacts part of the report.
pub fn render_artifacts(measured: &Measured, runs: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# kvplug benchmark results\n");
    let _ = writeln!(
        out,
        "Written by `scripts/bench` (`cargo run --release -p kvplug-bench`); do not edit by hand.\n"
    );
    let _ = writeln!(
        out,
        "- date: {}",
        command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(out, "- machine: {}", machine());
    let _ = writeln!(out, "- rustc: {}", command_line("rustc", &["--version"]));
    let _ = writeln!(
        out,
        "- wac-graph 0.12 (linking), profile `wasm-release` for components\n"
    );
    let _ = writeln!(out, "## Artifact sizes\n");
    let _ = writeln!(
        out,
        "`before #13`: the same artifact at commit {BEFORE_CORE_COMMIT}, before the backend core \
         (library split, answer caps, typed JSON with serde_json, shared mechanisms).\n"
    );
    let _ = writeln!(
        out,
        "| artifact | bytes | before #13 | change |\n|---|---:|---:|---:|"
    );
    for size in &measured.sizes {
        let before = BEFORE_CORE
            .iter()
            .find(|(what, _)| *what == size.what)
            .map(|(_, bytes)| *bytes);
        let (before, change) = match before {
            Some(before) => (
                before.to_string(),
                format!("{:+}", size.bytes as i64 - before as i64),
            ),
            None => (String::from("–"), String::from("–")),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {before} | {change} |",
            size.what, size.bytes
        );
    }
    let _ = writeln!(
        out,
        "\n## Sealing and linking ({runs} runs each, release build)\n"
    );
    let _ = writeln!(
        out,
        "| step | median ms | min ms | max ms |\n|---|---:|---:|---:|"
    );
    for timing in &measured.timings {
        let (min, max) = timing.spread();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            timing.what,
            ms(timing.median()),
            ms(min),
            ms(max)
        );
    }
    out
}
