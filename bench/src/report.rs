//! The results file: machine, versions, date, then one table per measurement.

use std::fmt::Write as _;

use crate::artifacts::Measured;

fn command_line(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

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

/// The markdown report.
pub fn render(measured: &Measured, runs: usize) -> String {
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
    let _ = writeln!(out, "| artifact | bytes |\n|---|---:|");
    for size in &measured.sizes {
        let _ = writeln!(out, "| {} | {} |", size.what, size.bytes);
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
