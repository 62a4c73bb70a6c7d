//! `kvplug-bench [--smoke] [--load-only | --timing-only | --counts-only | --watch-only]`: measures everything and writes
//! `BENCHMARKS.md` at the repository root (`--smoke`: one tiny round, written to
//! target/kvplug/ instead; `--load-only`: only the load curves, written to
//! target/kvplug/LOAD.md; `--timing-only`: only the embedded and native clients' time per
//! operation at 100 B and 64 KiB, printed; `--counts-only`: requests per call on every
//! backend, printed; `--watch-only`: the watch drivers' latency, throughput and requests per
//! event, printed).

use kvplug_bench::{artifacts, backends, load, memory, report, timing, watch};
use kvplug_compose::artifacts::{out_dir, repo_root};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let load_plan = if smoke {
        load::Plan::smoke()
    } else {
        load::Plan::full()
    };
    if std::env::args().any(|a| a == "--timing-only") {
        // The embedded and native clients at 100 B and 64 KiB only: a quicker look.
        let work = tempfile::tempdir()?;
        let mut config = kvplug_server::Config::new(work.path().join("data"));
        config.durable = false;
        let server = kvplug_server::Server::start(config)?;
        let mut plan = timing::Plan::full();
        plan.sizes.truncate(2);
        plan.clients.retain(|c| {
            !matches!(
                c,
                timing::Client::CliKv | timing::Client::CliHttp | timing::Client::Jco
            )
        });
        let samples = timing::run(&plan, &server.url(), work.path()).await?;
        let mut text = String::new();
        report::timing_section(&mut text, &plan, &samples);
        print!("{text}");
        return Ok(());
    }
    if std::env::args().any(|a| a == "--counts-only") {
        // Requests per call on every backend, the extension's calls included: seconds.
        let counts = backends::count_all().await?;
        print!("{}", backends::render_counts(&counts));
        return Ok(());
    }
    if std::env::args().any(|a| a == "--watch-only") {
        // The watch drivers: latency to `on-set`, events per second, requests per event.
        let rows = watch::measure(500, 2000).await?;
        print!("{}", watch::render(&rows));
        return Ok(());
    }
    if std::env::args().any(|a| a == "--load-only") {
        let work = tempfile::tempdir()?;
        let points = load::run(&load_plan, work.path()).await?;
        let text = load::render(&load_plan, &points);
        print!("{text}");
        std::fs::write(out_dir().join("LOAD.md"), text)?;
        return Ok(());
    }
    let (plan, artifact_runs, backend_sizes, backend_rounds) = if smoke {
        (timing::Plan::smoke(), 2, vec![(100, 3)], 1)
    } else {
        (
            timing::Plan::full(),
            21,
            vec![(100, 300), (64 << 10, 100)],
            5,
        )
    };
    let measured = artifacts::measure(artifact_runs)?;
    let work = tempfile::tempdir()?;
    let mut config = kvplug_server::Config::new(work.path().join("data"));
    config.durable = false;
    let server = kvplug_server::Server::start(config)?;
    let backends = backends::measure(&backend_sizes, backend_rounds).await?;
    let memory = memory::measure(&server.url(), 4 << 20).await?;
    let samples = timing::run(&plan, &server.url(), work.path()).await?;
    let points = load::run(&load_plan, work.path()).await?;
    let watch_rows = if smoke {
        watch::measure(5, 20).await?
    } else {
        watch::measure(500, 2000).await?
    };
    let results = report::Results {
        artifacts: measured,
        artifact_runs,
        backends,
        plan,
        samples,
        memory: Some(memory),
    };
    let mut text = report::render(&results);
    text.push_str(&load::render(&load_plan, &points));
    text.push_str(&watch::render(&watch_rows));
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
