//! `kvplug-server`: the reference key-value service as a command.

use std::collections::HashSet;
use std::io::Write as _;
use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use kvplug_server::{Config, Server};

const USAGE: &str = "\
usage: kvplug-server [--listen ADDR] [--data DIR] [--token-file FILE] [--bucket NAME]... [--max-body BYTES]
                     [--feed-retention CHANGES] [--feed-retention-bytes BYTES]

  --listen ADDR       address to bind (default 127.0.0.1:8787; port 0 picks a free one)
  --data DIR          data directory (default ./kvplug-data)
  --token-file FILE   require `Authorization: Bearer <first line of FILE>`
                      (or set KVPLUG_SERVER_TOKEN; never pass a token on the command line)
  --bucket NAME       only these buckets exist (repeatable; default: every bucket)
  --max-body BYTES    largest request body (default 67108864)
  --feed-retention N  changes the change feed keeps (default 100000)
  --feed-retention-bytes N
                      bytes of keys and values the change feed keeps (default 268435456)
";

fn parse(args: Vec<String>) -> anyhow::Result<Config> {
    let mut config = Config::new("kvplug-data");
    config.listen = SocketAddr::from(([127, 0, 0, 1], 8787));
    config.token = std::env::var("KVPLUG_SERVER_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    let mut buckets = HashSet::new();
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .with_context(|| format!("`{flag}` needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--listen" => {
                config.listen = value()?.parse().context("`--listen` is not ADDR:PORT")?
            }
            "--data" => config.data_dir = value()?.into(),
            "--token-file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("failed to read token file `{path}`"))?;
                let token = text.lines().next().unwrap_or("").trim().to_owned();
                if token.is_empty() {
                    bail!("token file `{path}` is empty");
                }
                config.token = Some(token);
            }
            "--bucket" => {
                buckets.insert(value()?);
            }
            "--feed-retention" => {
                config.feed_retention.changes = value()?
                    .parse()
                    .context("`--feed-retention` is not a number")?
            }
            "--feed-retention-bytes" => {
                config.feed_retention.bytes = value()?
                    .parse()
                    .context("`--feed-retention-bytes` is not a number")?
            }
            "--max-body" => {
                config.max_body = value()?.parse().context("`--max-body` is not a number")?
            }
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument `{other}`\n{USAGE}"),
        }
    }
    if !buckets.is_empty() {
        config.buckets = Some(buckets);
    }
    Ok(config)
}

fn main() -> anyhow::Result<()> {
    let config = parse(std::env::args().skip(1).collect())?;
    let data = config.data_dir.display().to_string();
    let server = Server::start(config)?;
    // Tests read this line to learn the port; flush so they never wait on a buffer.
    println!(
        "kvplug-server listening on {} (data in {data})",
        server.url()
    );
    std::io::stdout().flush()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    })?;
    server.stop();
    Ok(())
}
