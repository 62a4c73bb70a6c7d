//! `kvplug-bench [--smoke]`: measures everything and writes `BENCHMARKS.md` at the
//! repository root (`--smoke`: one tiny round, written to target/kvplug/ instead).

use kvplug_bench::{artifacts, memory, report, requests, timing};
use kvplug_compose::artifacts::{out_dir, repo_root};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let (plan, artifact_runs) = if smoke {
        (timing::Plan::smoke(), 2)
    } else {
        (timing::Plan::full(), 21)
    };
    let measured = artifacts::measure(artifact_runs)?;
    let work = tempfile::tempdir()?;
    let mut config = kvplug_server::Config::new(work.path().join("data"));
    config.durable = false;
    let server = kvplug_server::Server::start(config)?;
    let requests = requests::count(&server).await?;
    let memory = memory::measure(&server.url(), 4 << 20).await?;
    let samples = timing::run(&plan, &server.url(), work.path()).await?;
    let results = report::Results {
        artifacts: measured,
        artifact_runs,
        requests,
        plan,
        samples,
        memory: Some(memory),
    };
    let text = report::render(&results);
    print!("{text}");
    let path = if smoke {
        out_dir().join("BENCHMARKS.smoke.md")
    } else {
        repo_root().join("BENCHMARKS.md")
    };
    std::fs::write(&path, text)?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
