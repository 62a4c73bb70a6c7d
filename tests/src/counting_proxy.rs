//! A loopback HTTP proxy in front of a real service that counts and records every request
//! it forwards: how the tests and the benchmark count requests per call on services that
//! keep no count themselves (etcd, webdis), and what a native client replays to compare.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// One forwarded request, as the adapter sent it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: hyper::Method,
    pub path: String,
    /// Headers other than `host` and `content-length`.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

#[derive(Default)]
struct Shared {
    count: AtomicU64,
    connections: AtomicU64,
    log: Mutex<Vec<Recorded>>,
}

/// The running proxy; dropping it stops it.
pub struct CountingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl CountingProxy {
    /// Forwards to `upstream` (an `http://ip:port` URL; a path after it is ignored: requests
    /// keep theirs) from a free loopback port.
    ///
    /// The proxy runs on a thread and runtime of its own, so it works the same from
    /// synchronous code and from inside a test's runtime.
    pub fn start(upstream: &str) -> CountingProxy {
        CountingProxy::start_at(upstream, SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Like [`CountingProxy::start`], listening on `addr`: a proxy stopped a moment ago can
    /// come back on its port (the tests' service restart where the service itself cannot
    /// restart without losing its data). The port may take a moment to be free again.
    pub fn start_at(upstream: &str, addr: SocketAddr) -> CountingProxy {
        let (origin, _) = split_url(upstream);
        let upstream: SocketAddr = origin
            .parse()
            .unwrap_or_else(|e| panic!("upstream `{upstream}` is not http://ip:port: {e}"));
        let started = std::time::Instant::now();
        let listener = loop {
            match std::net::TcpListener::bind(addr) {
                Ok(listener) => break listener,
                Err(_) if started.elapsed() < std::time::Duration::from_secs(10) => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let serving = Arc::clone(&shared);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let accept = async {
                    while let Ok((stream, _)) = listener.accept().await {
                        serving.connections.fetch_add(1, Ordering::SeqCst);
                        let shared = Arc::clone(&serving);
                        tokio::spawn(async move {
                            let service = hyper::service::service_fn(move |request| {
                                forward(Arc::clone(&shared), upstream, request)
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                };
                tokio::select! {
                    () = accept => {}
                    _ = stopped => {}
                }
            });
        });
        CountingProxy {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// A proxy in front of the service in `settings`, whose `url` is pointed at it.
    pub fn in_front_of(settings: &mut kvplug_runner::Settings) -> CountingProxy {
        let url = settings
            .iter()
            .find(|(name, _)| name == "url")
            .map(|(_, url)| url.clone())
            .expect("settings with a url");
        let proxy = CountingProxy::start(&url);
        Self::point_at(settings, &proxy);
        proxy
    }

    /// Points the `url` of `settings` at `proxy`.
    pub fn point_at(settings: &mut kvplug_runner::Settings, proxy: &CountingProxy) {
        if let Some(url) = settings.iter_mut().find(|(name, _)| name == "url") {
            url.1 = proxy.url_for(&url.1);
        }
    }

    /// `url` (a service's) with its origin replaced by the proxy's, its path kept.
    pub fn url_for(&self, url: &str) -> String {
        format!("{}{}", self.url(), split_url(url).1)
    }

    /// The proxy's `http://` URL, to use as the adapter's `url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests forwarded so far.
    pub fn requests(&self) -> u64 {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// TCP connections clients opened to the proxy so far (it keeps each alive as the client
    /// asks, so a pooled client opens few).
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The requests recorded since the last call, oldest first.
    pub fn take_log(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.shared.log.lock().expect("proxy log"))
    }
}

async fn forward(
    shared: Arc<Shared>,
    upstream: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Incoming>, std::io::Error> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), ToString::to_string);
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        // `host` stays as the client sent it: signatures (SigV4) cover it.
        .filter(|(name, _)| name.as_str() != "content-length")
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    shared.count.fetch_add(1, Ordering::SeqCst);
    shared.log.lock().expect("proxy log").push(Recorded {
        method: parts.method.clone(),
        path: path.clone(),
        headers: headers.clone(),
        body: body.clone(),
    });

    // A fresh upstream connection per request: counting, not speed, is this proxy's job.
    let stream = tokio::net::TcpStream::connect(upstream).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    let mut outgoing = Request::builder().method(parts.method).uri(path);
    for (name, value) in &headers {
        outgoing = outgoing.header(name.as_str(), value.as_slice());
    }
    let outgoing = outgoing
        .body(Full::new(body))
        .map_err(std::io::Error::other)?;
    let response = sender
        .send_request(outgoing)
        .await
        .map_err(std::io::Error::other)?;
    // Passed on as it arrives, framing included: a streamed answer (etcd's watch) never ends.
    Ok(response)
}

/// `http://ip:port/path` as `("ip:port", "/path")`; the path may be empty.
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("http://");
    match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    }
}
