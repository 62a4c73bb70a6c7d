//! Outgoing HTTP for wasmtime embedders through a keep-alive pool: a drop-in
//! `WasiHttpHooks::send_request` for `wasmtime-wasi-http` 48.
//!
//! wasmtime's default client opens a TCP connection and does an HTTP/1 handshake for every
//! request. Under load that costs a round trip per call and, against a remote service, a local
//! port in TIME_WAIT per call. This pool keeps connections open per scheme and authority with
//! `TCP_NODELAY` (without it a kept-alive PUT waits ~40 ms on Nagle and delayed ACKs), bounds how
//! many connections an authority gets, closes idle ones after a timeout, speaks HTTPS with
//! wasmtime's own roots and crypto provider, and honours each request's connect, first-byte and
//! between-bytes timeouts.
//!
//! An embedder adds three lines:
//!
//! ```ignore
//! let pool = kvplug_http_pool::Pool::new(kvplug_http_pool::PoolConfig::default()); // once
//! hooks: pool.hooks(),                       // a field of the store's host state
//! WasiHttpCtxView { ctx, table, hooks: &mut self.hooks } // in WasiHttpView::http
//! ```

mod body;
mod connect;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Scheme;
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::body::PooledBody;

/// The pool's limits.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The most connections open at once to one scheme and authority; a request beyond waits
    /// for one to come free, within its connect timeout.
    pub max_connections_per_authority: usize,
    /// How long a connection may sit idle before it is closed rather than reused. Below the
    /// keep-alive timeout of common servers (60 s and more), so a server rarely closes a
    /// connection just as it is reused.
    pub idle_timeout: Duration,
    /// Certificates trusted besides the web PKI roots wasmtime trusts (a private CA).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections_per_authority: 32,
            idle_timeout: Duration::from_secs(30),
            extra_roots: Vec::new(),
        }
    }
}

/// The defaults wasmtime's own client uses when a request sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// Where a connection goes: whether it is TLS, and `host:port`.
type Key = (bool, String);

/// A kept-alive connection waiting for its next request.
struct Idle {
    sender: SendRequest<WasiBody>,
    since: Instant,
}

struct Inner {
    config: PoolConfig,
    tls: Arc<rustls::ClientConfig>,
    idle: Mutex<HashMap<Key, Vec<Idle>>>,
    limits: Mutex<HashMap<Key, Arc<Semaphore>>>,
    opened: AtomicU64,
}

/// A connection pool shared by every store of an engine (cheap to clone).
#[derive(Clone)]
pub struct Pool(Arc<Inner>);

impl Pool {
    /// A pool with `config`; fails only if a certificate in `extra_roots` is unusable.
    pub fn new(config: PoolConfig) -> Result<Pool, rustls::Error> {
        let tls = connect::tls_config(&config.extra_roots)?;
        Ok(Pool(Arc::new(Inner {
            config,
            tls,
            idle: Mutex::default(),
            limits: Mutex::default(),
            opened: AtomicU64::new(0),
        })))
    }

    /// The hooks to put in a store's `WasiHttpCtxView`.
    pub fn hooks(&self) -> PooledHooks {
        PooledHooks(self.clone())
    }

    /// TCP connections opened so far (for benchmarks and tests).
    pub fn connections_opened(&self) -> u64 {
        self.0.opened.load(Ordering::Relaxed)
    }
}

/// `WasiHttpHooks` that send through a [`Pool`].
pub struct PooledHooks(Pool);

impl WasiHttpHooks for PooledHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), Error>> + Send>,
                    ),
                    Error,
                >,
            > + Send,
    > {
        // Like wasmtime's default: request-side processing errors are not reported back.
        drop(fut);
        let inner = Arc::clone(&(self.0).0);
        Box::new(async move {
            let response = send(inner, request, options).await?;
            // The pool drives each connection on a task of its own: nothing is left to await.
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((response.map(BodyExt::boxed_unsync), io))
        })
    }
}

async fn send(
    inner: Arc<Inner>,
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<PooledBody>, Error> {
    let timeout = |pick: fn(&RequestOptions) -> Option<Duration>| {
        options.as_ref().and_then(pick).unwrap_or(DEFAULT_TIMEOUT)
    };
    let connect_timeout = timeout(|o| o.connect_timeout);
    let first_byte_timeout = timeout(|o| o.first_byte_timeout);
    let between_bytes_timeout = timeout(|o| o.between_bytes_timeout);

    let uri = request.uri();
    let tls = uri.scheme() == Some(&Scheme::HTTPS);
    let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
    let authority = match authority.port() {
        Some(_) => authority.to_string(),
        None => format!("{authority}:{}", if tls { 443 } else { 80 }),
    };
    // Only the path goes on the wire; the host travels in the `host` header wasmtime sets.
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(uri.path_and_query().map_or("/", |p| p.as_str()))
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let key: Key = (tls, authority);

    let permit = inner.slot(&key, connect_timeout).await?;
    let mut request = Some(request);
    // A kept-alive connection the server closed meanwhile gives the request back unsent: then
    // it goes on the next idle connection, or a new one.
    loop {
        let Some(taken) = request.take() else {
            return Err(Error::ConnectionTerminated);
        };
        let (mut sender, reused) = match inner.take_idle(&key) {
            Some(sender) => (sender, true),
            None => (inner.connect(&key, connect_timeout).await?, false),
        };
        // A new connection is ready once its task runs; a kept one that the server has
        // closed never is: then the request, still unsent, goes on another. A kept one that
        // is ready already needs no timer.
        let ready = if sender.is_ready() {
            Ok(Ok(()))
        } else {
            tokio::time::timeout(connect_timeout, sender.ready()).await
        };
        match ready {
            Ok(Ok(())) => {}
            _ if reused => {
                request = Some(taken);
                continue;
            }
            Ok(Err(error)) => return Err(Error::from(error)),
            Err(_) => return Err(Error::ConnectionTimeout),
        }
        let sent = tokio::time::timeout(first_byte_timeout, sender.try_send_request(taken)).await;
        match sent {
            Err(_) => return Err(Error::ConnectionReadTimeout),
            Ok(Ok(response)) => {
                let pool = Arc::clone(&inner);
                return Ok(response.map(|incoming| {
                    PooledBody::new(
                        incoming,
                        between_bytes_timeout,
                        move |sender| pool.put_idle(key, sender),
                        sender,
                        permit,
                    )
                }));
            }
            Ok(Err(mut failed)) => match failed.take_message() {
                Some(unsent) if reused => request = Some(unsent),
                _ => return Err(Error::from(failed.into_error())),
            },
        }
    }
}

impl Inner {
    /// A connection slot for `key`, waited for at most `within`.
    async fn slot(&self, key: &Key, within: Duration) -> Result<OwnedSemaphorePermit, Error> {
        let semaphore = {
            let mut limits = self
                .limits
                .lock()
                .map_err(|_| Error::ConnectionLimitReached)?;
            Arc::clone(limits.entry(key.clone()).or_insert_with(|| {
                Arc::new(Semaphore::new(
                    self.config.max_connections_per_authority.max(1),
                ))
            }))
        };
        // A free slot needs no timer; only a wait for one does.
        if let Ok(permit) = Arc::clone(&semaphore).try_acquire_owned() {
            return Ok(permit);
        }
        match tokio::time::timeout(within, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Error::ConnectionLimitReached),
        }
    }

    /// The most recently idled live connection to `key`, if any is fresh enough.
    fn take_idle(&self, key: &Key) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(Idle { sender, since }) = list.pop() {
            if since.elapsed() < self.config.idle_timeout && !sender.is_closed() {
                return Some(sender);
            }
            // Dropping the sender closes the connection.
        }
        None
    }

    fn put_idle(&self, key: Key, sender: SendRequest<WasiBody>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            list.retain(|i| i.since.elapsed() < self.config.idle_timeout && !i.sender.is_closed());
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(&self, key: &Key, within: Duration) -> Result<SendRequest<WasiBody>, Error> {
        let sender = connect::open(key, &self.tls, within).await?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(sender)
    }
}
