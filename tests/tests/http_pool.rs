//! `kvplug-http-pool`, the keep-alive client for wasmtime embedders: calls share kept-alive
//! connections (counted at a proxy), HTTPS works against a local TLS server with a generated
//! certificate (and fails without trusting it), and each request's timeouts still end a call.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kvplug_compose::artifacts;
use kvplug_http_pool::{Pool, PoolConfig};
use kvplug_runner::Runtime;
use kvplug_tests::counting_proxy::CountingProxy;
use kvplug_tests::fault_server::{Action, FaultServer};
use kvplug_tests::{Kv, other_message, reference_server, settings};

/// An embedded runtime whose guests send through a fresh pool.
fn pooled(config: PoolConfig) -> (Runtime, Pool) {
    let pool = Pool::new(config).unwrap();
    (Runtime::new().unwrap().with_pool(pool.clone()), pool)
}

async fn http_adapter_on(runtime: &Runtime, settings: kvplug_runner::Settings) -> Kv {
    kvplug_tests::artifacts();
    let adapter = runtime.load(&artifacts::adapter_path("http")).unwrap();
    Kv::on(runtime, &adapter, settings).await
}

/// `calls` sets and gets through `kv`, checked.
async fn set_and_get(kv: &mut Kv, calls: usize) {
    let b = kv.open("pool").await.unwrap();
    for i in 0..calls {
        let key = format!("k{i}");
        kv.set(b, &key, key.as_bytes()).await.unwrap();
        assert_eq!(kv.get(b, &key).await.unwrap(), Some(key.into_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_share_one_kept_alive_connection() {
    let (_data, server) = reference_server();

    let proxy = CountingProxy::start(&server.url());
    let (runtime, pool) = pooled(PoolConfig::default());
    let mut kv = http_adapter_on(&runtime, settings(&proxy.url())).await;
    set_and_get(&mut kv, 50).await;
    assert!(proxy.requests() >= 100, "{}", proxy.requests());
    assert_eq!(proxy.connections(), 1, "{} requests", proxy.requests());
    assert_eq!(pool.connections_opened(), 1);

    // wasmtime's default client: a connection per request.
    let proxy = CountingProxy::start(&server.url());
    let mut kv = http_adapter_on(&Runtime::new().unwrap(), settings(&proxy.url())).await;
    set_and_get(&mut kv, 50).await;
    assert_eq!(proxy.connections(), proxy.requests());
}

/// A TLS server for `localhost` (a certificate generated here) that forwards each connection
/// to `upstream`; counts the connections it accepts.
struct TlsFront {
    addr: SocketAddr,
    accepted: Arc<AtomicU64>,
    certificate: rustls::pki_types::CertificateDer<'static>,
}

impl TlsFront {
    fn start(upstream: SocketAddr) -> TlsFront {
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let certificate = generated.cert.der().clone();
        let key =
            rustls::pki_types::PrivateKeyDer::Pkcs8(generated.key_pair.serialize_der().into());
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let counting = Arc::clone(&accepted);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                while let Ok((tcp, _)) = listener.accept().await {
                    counting.fetch_add(1, Ordering::SeqCst);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        TlsFront {
            addr,
            accepted,
            certificate,
        }
    }

    fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_through_the_pool_against_a_generated_certificate() {
    let (_data, server) = reference_server();
    let upstream: SocketAddr = server.url().trim_start_matches("http://").parse().unwrap();
    let front = TlsFront::start(upstream);

    let (runtime, pool) = pooled(PoolConfig {
        extra_roots: vec![front.certificate.clone()],
        ..PoolConfig::default()
    });
    let mut kv = http_adapter_on(&runtime, settings(&front.url())).await;
    set_and_get(&mut kv, 10).await;
    assert_eq!(front.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.connections_opened(), 1);

    // The same server is refused when its certificate is not trusted.
    let (runtime, _) = pooled(PoolConfig::default());
    let mut kv = http_adapter_on(&runtime, settings(&front.url())).await;
    let message = match kv.open("pool").await {
        Err(error) => other_message(error),
        Ok(b) => other_message(kv.set(b, "k", b"v").await.unwrap_err()),
    };
    assert!(message.to_lowercase().contains("tls"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_requests_timeouts_end_the_call() {
    let marks: Vec<String> = kvplug_tests::services::marks()
        .iter()
        .map(|m| (*m).to_owned())
        .collect();
    let mut head = String::from("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n");
    for mark in &marks {
        head.push_str(mark);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let head = head.into_bytes();
    let faults = [
        ("no answer", FaultServer::start(|_| Action::Hang)),
        (
            "silent after its head",
            FaultServer::start(move |_| Action::Silent { head: head.clone() }),
        ),
    ];
    for (name, fault) in faults {
        let (runtime, _) = pooled(PoolConfig::default());
        let mut s = settings(&fault.url());
        s.push(("timeout-ms".into(), "1000".into()));
        let mut kv = http_adapter_on(&runtime, s).await;
        let started = Instant::now();
        let outcome = match kv.open("b").await {
            Err(error) => Err(error),
            Ok(b) => kv.get(b, "k").await.map(drop),
        };
        let elapsed = started.elapsed();
        assert!(outcome.is_err(), "{name}: answered");
        assert!(elapsed < Duration::from_secs(4), "{name}: took {elapsed:?}");
    }
}
