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

/// A pooled connection the service closed after answering (it closes every connection, as a
/// server does at its keep-alive timeout) is never reused for a request: every call
/// succeeds, and the service receives each request exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_the_service_closed_is_replaced_not_resent_on() {
    let seen = Arc::new(AtomicU64::new(0));
    let counting = Arc::clone(&seen);
    let fault = FaultServer::start(move |request| {
        counting.fetch_add(1, Ordering::SeqCst);
        match request.method.as_str() {
            "GET" => kvplug_tests::fault_server::response(200, &["kvplug-protocol: 1"], b"v"),
            _ => kvplug_tests::fault_server::response(204, &["kvplug-protocol: 1"], b""),
        }
    });
    let (runtime, pool) = pooled(PoolConfig::default());
    let mut kv = http_adapter_on(&runtime, settings(&fault.url())).await;
    let b = kv.open("pool").await.unwrap();
    for i in 0..20 {
        kv.set(b, &format!("k{i}"), b"v").await.unwrap();
        assert_eq!(kv.get(b, "k").await.unwrap(), Some(b"v".to_vec()));
        // Sometimes the close arrives before the next call, sometimes just after it starts.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(seen.load(Ordering::SeqCst), 40);
    assert_eq!(
        pool.connections_opened(),
        41,
        "open's HEAD, then one per request"
    );
}

/// The service restarts between calls on the same address: its kept-alive connection is
/// dead, and the next call goes on a new one.
#[tokio::test(flavor = "multi_thread")]
async fn the_next_call_reconnects_after_the_service_restarts() {
    let (data, server) = reference_server();
    let addr = server.addr();
    let (runtime, pool) = pooled(PoolConfig::default());
    let mut kv = http_adapter_on(&runtime, settings(&server.url())).await;
    let b = kv.open("pool").await.unwrap();
    kv.set(b, "k", b"before").await.unwrap();
    server.stop();
    let mut config = kvplug_server::Config::new(data.path());
    config.listen = addr;
    let _server = kvplug_server::Server::start(config).unwrap();
    assert_eq!(kv.get(b, "k").await.unwrap(), Some(b"before".to_vec()));
    kv.set(b, "k", b"after").await.unwrap();
    assert_eq!(kv.get(b, "k").await.unwrap(), Some(b"after".to_vec()));
    assert_eq!(pool.connections_opened(), 2);
}

/// The service reads a request and drops the connection without answering: the request may
/// have been acted on, so the call fails rather than sending it again.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_cut_off_mid_way_is_not_sent_again() {
    let seen = Arc::new(AtomicU64::new(0));
    let counting = Arc::clone(&seen);
    let fault = FaultServer::start(move |_| {
        counting.fetch_add(1, Ordering::SeqCst);
        Action::Raw(Vec::new())
    });
    let (runtime, _) = pooled(PoolConfig::default());
    let mut kv = http_adapter_on(&runtime, settings(&fault.url())).await;
    let b = kv.open("pool").await.unwrap();
    let message = other_message(kv.increment(b, "n", 1).await.unwrap_err());
    assert!(message.contains("POST"), "{message}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        1,
        "the increment was sent again"
    );
}

/// With one connection allowed, concurrent calls wait for it rather than fail; a wait that
/// outlasts the call's timeout ends the call.
#[tokio::test(flavor = "multi_thread")]
async fn a_pool_at_its_limit_queues_within_the_timeout() {
    let (_data, server) = reference_server();
    let proxy = CountingProxy::start(&server.url());
    let (runtime, pool) = pooled(PoolConfig {
        max_connections_per_authority: 1,
        ..PoolConfig::default()
    });
    let mut calls = Vec::new();
    for instance in 0..4 {
        let mut kv = http_adapter_on(&runtime, settings(&proxy.url())).await;
        calls.push(tokio::spawn(async move {
            let b = kv.open("pool").await.unwrap();
            for i in 0..10 {
                let key = format!("i{instance}-{i}");
                kv.set(b, &key, b"v").await.unwrap();
                assert_eq!(kv.get(b, &key).await.unwrap(), Some(b"v".to_vec()));
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(proxy.connections(), 1);
    assert_eq!(pool.connections_opened(), 1);

    // The one connection is held by a request that never gets an answer.
    let hang = FaultServer::start(|_| Action::Hang);
    let mut s = settings(&hang.url());
    s.push(("timeout-ms".into(), "1000".into()));
    let (runtime, _) = pooled(PoolConfig {
        max_connections_per_authority: 1,
        ..PoolConfig::default()
    });
    let mut first = http_adapter_on(&runtime, s.clone()).await;
    let mut second = http_adapter_on(&runtime, s).await;
    let (b1, b2) = (
        first.open("b").await.unwrap(),
        second.open("b").await.unwrap(),
    );
    let started = Instant::now();
    let holding = tokio::spawn(async move { first.get(b1, "k").await.map(drop) });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = second.get(b2, "k").await.map(drop);
    assert!(waiting.is_err());
    assert!(holding.await.unwrap().is_err());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

/// Two services behind one pool: each receives only the requests meant for it, on a
/// connection of its own.
#[tokio::test(flavor = "multi_thread")]
async fn a_connection_serves_one_authority_only() {
    let (_data, server) = reference_server();
    let (_data2, server2) = reference_server();
    let (a, c) = (
        CountingProxy::start(&server.url()),
        CountingProxy::start(&server2.url()),
    );
    let (runtime, pool) = pooled(PoolConfig::default());
    let mut kv_a = http_adapter_on(&runtime, settings(&a.url())).await;
    let mut kv_c = http_adapter_on(&runtime, settings(&c.url())).await;
    let (ba, bc) = (
        kv_a.open("pool").await.unwrap(),
        kv_c.open("pool").await.unwrap(),
    );
    for i in 0..10 {
        kv_a.set(ba, &format!("a{i}"), b"a").await.unwrap();
        kv_c.set(bc, &format!("c{i}"), b"c").await.unwrap();
    }
    assert_eq!((a.requests(), c.requests()), (11, 11));
    assert_eq!((a.connections(), c.connections()), (1, 1));
    assert_eq!(pool.connections_opened(), 2);
    assert_eq!(kv_a.get(ba, "c0").await.unwrap(), None);
    assert_eq!(kv_c.get(bc, "a0").await.unwrap(), None);
}
