//! hyper-util's pooled `Client` (keep-alive, `TCP_NODELAY`) as a runtime's outgoing client:
//! the off-the-shelf reference `kvplug-http-pool` is measured against, so that what the pool
//! itself costs can be told from what wasmtime's `wasi:http` costs on any kept-alive client.
//! No timeouts, no TLS, no connection limit: a yardstick, not a product.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Hooks for [`kvplug_runner::Runtime::with_hooks`]: every store shares one `Client`.
pub fn hooks() -> kvplug_runner::Hooks {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, WasiBody> =
        Client::builder(TokioExecutor::new()).build(connector);
    Arc::new(move || Box::new(ReferenceHooks(client.clone())))
}

struct ReferenceHooks(Client<HttpConnector, WasiBody>);

type Sent = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for ReferenceHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Sent {
        drop(fut);
        let client = self.0.clone();
        Box::new(async move {
            let response = client
                .request(request)
                .await
                .map_err(|_| Error::ConnectionTerminated)?;
            let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
            Ok((
                response.map(|body| body.map_err(Error::from).boxed_unsync()),
                io,
            ))
        })
    }
}
