//! The quickstart: build, link, serve, run — the whole path a user takes, in one call.

use std::io::Write;
use std::path::Path;

use anyhow::{Result, bail};
use kvplug_compose::{artifacts, plug, surface};
use kvplug_server::{Config, Server};

use crate::{RunOutput, Runtime};

/// What a quickstart run produced.
#[derive(Debug)]
pub struct Report {
    /// The example app's run.
    pub output: RunOutput,
    /// Protocol requests the server answered during the run.
    pub requests: u64,
}

/// Builds `kvplug-http.wasm` and the example app, links them (`wac plug` semantics), starts
/// the reference server on a free loopback port with its data in `data_dir`, and runs the
/// linked app on embedded wasmtime with the server's URL as the adapter's `url` setting.
pub async fn run(data_dir: &Path, log: &mut impl Write) -> Result<Report> {
    writeln!(
        log,
        "==> building kvplug-http.wasm and the example app (wasm32-wasip2)"
    )?;
    let adapter = artifacts::build_adapter("http")?;
    artifacts::build_fixtures()?;
    let app = artifacts::fixture_path("example-app");
    for path in [&adapter, &app] {
        writeln!(
            log,
            "    {:>7} bytes  {}",
            std::fs::metadata(path)?.len(),
            path.display()
        )?;
    }

    let found = surface::surface(&std::fs::read(&adapter)?)?;
    surface::check_adapter(&found)?;
    writeln!(
        log,
        "==> kvplug-http.wasm imports only wasi:http and what it needs:"
    )?;
    for name in &found.imports {
        writeln!(log, "    {name}")?;
    }

    let linked = artifacts::out_dir().join("example-app.linked.wasm");
    plug::plug_files(&app, &[&adapter], &linked)?;
    writeln!(
        log,
        "==> linked: example-app.wasm + kvplug-http.wasm -> {} ({} bytes)",
        linked.display(),
        std::fs::metadata(&linked)?.len()
    )?;

    let server = Server::start(Config::new(data_dir))?;
    writeln!(
        log,
        "==> reference server on {} (data in {})",
        server.url(),
        data_dir.display()
    )?;

    // Requests go through the keep-alive pool an embedder would use (`kvplug-http-pool`).
    let pool = kvplug_http_pool::Pool::new(kvplug_http_pool::PoolConfig::default())?;
    let runtime = Runtime::new()?.with_pool(pool);
    let component = runtime.load(&linked)?;
    let settings = vec![("url".to_owned(), server.url())];
    writeln!(
        log,
        "==> running on embedded wasmtime 48 with wasi:http (kept-alive connections), config url={}",
        server.url()
    )?;
    let output = runtime
        .run_command(&component, &["example-app".to_owned()], &settings)
        .await?;
    log.write_all(output.stdout.as_bytes())?;
    log.write_all(output.stderr.as_bytes())?;
    let requests = server.requests();
    server.stop();
    writeln!(log, "==> the server answered {requests} HTTP requests")?;
    if !output.success {
        bail!("the example app failed");
    }
    Ok(Report { output, requests })
}
