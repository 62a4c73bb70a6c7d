//! Serving a `wasi:http/proxy` component from embedded wasmtime, as `wasmtime serve` does:
//! one fresh instance per incoming request, its settings through `wasi:config`, its outgoing
//! requests through the runtime's hooks (its pool) if it has any. The load benchmark serves the example
//! HTTP app this way, with and without `kvplug-http-pool`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, Result, anyhow};
use hyper::server::conn::http1;
use tokio::net::TcpListener;
use wasmtime::component::Component;
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::{Host, Runtime, Settings, new_store};

/// A component being served on a loopback port; dropping it stops accepting connections.
pub struct Served {
    addr: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Served {
    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

struct State {
    pre: ProxyPre<Host>,
    hooks: Option<crate::Hooks>,
    settings: Settings,
}

impl Runtime {
    /// Serves `component` (a `wasi:http/proxy`) on a free loopback port, from tasks of the
    /// current tokio runtime.
    pub async fn serve(&self, component: &Component, settings: Settings) -> Result<Served> {
        let pre = ProxyPre::new(self.linker.instantiate_pre(component)?)?;
        let state = Arc::new(State {
            pre,
            hooks: self.hooks.clone(),
            settings,
        });
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let _ = client.set_nodelay(true);
                let state = Arc::clone(&state);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { handle(&state, request).await }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(client), service)
                        .await;
                });
            }
        });
        Ok(Served { addr, accepting })
    }
}

async fn handle(
    state: &State,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<HyperOutgoingBody>> {
    let mut store = new_store(
        state.pre.engine(),
        state.hooks.as_ref(),
        &state.settings,
        &[],
        &[],
        None,
    );
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let outparam = store.data_mut().http().new_response_outparam(sender)?;
    let pre = state.pre.clone();
    // The guest may go on writing the body after it hands over the response's head.
    let task = tokio::spawn(async move {
        let proxy = pre.instantiate_async(&mut store).await?;
        proxy
            .wasi_http_incoming_handler()
            .call_handle(store, incoming, outparam)
            .await
    });
    match receiver.await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(anyhow!("the guest answered with an error: {code:?}")),
        Err(_) => {
            let outcome = task.await.context("the guest's task failed")?;
            outcome.map_err(anyhow::Error::from)?;
            Err(anyhow!("the guest never set a response"))
        }
    }
}
