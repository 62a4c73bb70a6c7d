//! `kvplug-bench [RUNS]`: measures and writes `BENCHMARKS.md` at the repository root.

fn main() -> anyhow::Result<()> {
    let runs = std::env::args()
        .nth(1)
        .map(|n| n.parse::<usize>())
        .transpose()?
        .unwrap_or(21);
    let measured = kvplug_bench::artifacts::measure(runs)?;
    let report = kvplug_bench::report::render(&measured, runs);
    print!("{report}");
    let path = kvplug_compose::artifacts::repo_root().join("BENCHMARKS.md");
    std::fs::write(&path, report)?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
