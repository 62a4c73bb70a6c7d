//! Opening a connection: TCP with `TCP_NODELAY`, TLS for `https`, the HTTP/1 handshake, and a
//! task that drives the connection for as long as it lives.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use wasmtime_wasi_http::{Error, WasiBody};

use crate::Key;

trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// wasmtime's TLS setup (the web PKI roots, the `ring` provider), plus `extra_roots`.
pub fn tls_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    for certificate in extra_roots {
        roots.add(certificate.clone())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A new connection to `key`, ready to send, within `within`.
pub async fn open(
    (tls, authority): &Key,
    config: &Arc<rustls::ClientConfig>,
    within: Duration,
) -> Result<SendRequest<WasiBody>, Error> {
    let opening = async {
        let tcp = TcpStream::connect(authority.as_str())
            .await
            .map_err(Error::Connect)?;
        // Without it a kept-alive request whose body follows its head waits on Nagle's
        // algorithm for the previous response's delayed ACK: ~40 ms a PUT.
        tcp.set_nodelay(true).map_err(Error::Connect)?;
        let stream: Box<dyn Stream> = if *tls {
            let name = server_name(authority)?;
            let tls = TlsConnector::from(Arc::clone(config))
                .connect(name, tcp)
                .await
                .map_err(Error::Tls)?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::from)?;
        tokio::spawn(async move {
            // Its errors reach the request or the body being read; an idle one just ends.
            let _ = connection.await;
        });
        Ok(sender)
    };
    tokio::time::timeout(within, opening)
        .await
        .map_err(|_| Error::ConnectionTimeout)?
}

/// The name a certificate must carry for `authority` (`host:port`, IPv6 in brackets).
fn server_name(authority: &str) -> Result<ServerName<'static>, Error> {
    if let Ok(address) = authority.parse::<std::net::SocketAddr>() {
        return Ok(ServerName::from(address.ip()));
    }
    let host = authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host);
    ServerName::try_from(host.to_owned()).map_err(Error::InvalidDnsNameError)
}
