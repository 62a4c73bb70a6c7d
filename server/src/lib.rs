//! The kvplug reference key-value service.
//!
//! It speaks the protocol of `docs/protocol.md`, stores data durably in one redb file, and
//! binds 127.0.0.1 unless told otherwise. Tests, the quickstart and the benchmark start it
//! in-process through [`Server::start`]; `kvplug-server` is the same thing as a command.

mod service;
pub mod storage;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

use crate::service::State;
pub use crate::storage::Clock;
use crate::storage::Storage;

/// How to run a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The directory holding the database file (created if missing).
    pub data_dir: PathBuf,
    /// Require `Authorization: Bearer <token>` on every request.
    pub token: Option<String>,
    /// If set, only these buckets exist; others answer `no-such-bucket`.
    pub buckets: Option<HashSet<String>>,
    /// Largest request body accepted, in bytes.
    pub max_body: usize,
    /// `fsync` every write before acknowledging it. Only benchmarks turn this off, to
    /// measure the HTTP path rather than the disk; an unsynced write can be lost in a crash.
    pub durable: bool,
    /// Judges expiry (ms since the Unix epoch): the system clock unless a test steps its own.
    pub clock: Clock,
    /// How much of the change feed is kept (`GET {bucket}/changes`): the newest changes
    /// within a count and a size in bytes; a reader further behind is told where to resume
    /// (`410 position-dropped`).
    pub feed_retention: storage::Retention,
}

impl Config {
    /// Loopback on a free port, no token, every bucket, 64 MiB bodies.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            token: None,
            buckets: None,
            max_body: 64 << 20,
            durable: true,
            clock: Clock::system(),
            feed_retention: storage::Retention::default(),
        }
    }
}

/// The file inside the data directory that holds everything.
pub const DATABASE_FILE: &str = "kvplug.redb";

/// A running server; dropping it stops the server and closes the database.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Dropping it stops the sweeper.
    stop_sweeper: Option<std::sync::mpsc::Sender<()>>,
    sweeper: Option<std::thread::JoinHandle<()>>,
}

/// How often the sweeper looks for expired entries. Reads never depend on it (they filter
/// by deadline themselves); it only returns the space.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Deletes expired entries until `stop` is dropped.
fn sweep(state: &State, stop: &std::sync::mpsc::Receiver<()>) {
    loop {
        // A full batch means more are due: go on without waiting, in separate transactions.
        while let Ok(storage::SWEEP_BATCH) = state.storage.sweep(storage::SWEEP_BATCH) {}
        match stop.recv_timeout(SWEEP_INTERVAL) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Server {
    /// Opens the database and starts serving on a thread of its own, so that sync and async
    /// callers alike can use it.
    pub fn start(config: Config) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "failed to create data directory `{}`",
                config.data_dir.display()
            )
        })?;
        let storage = Storage::open_with_retention(
            &config.data_dir.join(DATABASE_FILE),
            config.durable,
            config.clock,
            config.feed_retention,
        )?;
        let state = Arc::new(State {
            storage,
            token: config.token,
            buckets: config.buckets,
            max_body: config.max_body,
            requests: AtomicU64::new(0),
        });
        let listener = std::net::TcpListener::bind(config.listen)
            .with_context(|| format!("failed to bind {}", config.listen))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (shutdown, mut stopped) = watch::channel(false);
        let serving = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("kvplug-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = stopped.changed() => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let _ = stream.set_nodelay(true);
                                let state = Arc::clone(&serving);
                                tokio::spawn(async move {
                                    let service = service_fn(move |request| {
                                        let state = Arc::clone(&state);
                                        async move {
                                            Ok::<_, std::convert::Infallible>(
                                                service::handle(state, request).await,
                                            )
                                        }
                                    });
                                    // A client that hangs up mid-request is its own problem.
                                    let _ = http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), service)
                                        .await;
                                });
                            }
                        }
                    }
                });
                // Open connections are dropped with the runtime.
                runtime.shutdown_background();
            })?;
        let (stop_sweeper, stop) = std::sync::mpsc::channel();
        let sweeping = Arc::clone(&state);
        let sweeper = std::thread::Builder::new()
            .name("kvplug-sweeper".into())
            .spawn(move || sweep(&sweeping, &stop))?;
        Ok(Server {
            addr,
            state,
            shutdown,
            thread: Some(thread),
            stop_sweeper: Some(stop_sweeper),
            sweeper: Some(sweeper),
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`: the `url` setting for an adapter.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many protocol requests (paths under `/v1/`) it has answered or is answering.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Stops serving and waits for the serving thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        drop(self.stop_sweeper.take());
        if let Some(sweeper) = self.sweeper.take() {
            let _ = sweeper.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_inner();
    }
}
