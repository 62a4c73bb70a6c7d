//! The `http` backend: kvplug-server, in process.

use kvplug_runner::Settings;

use super::{
    BackendTests, Fewest, NameLimits, OversizedBatch, Secrets, Service, TestService, ValueLimit,
    longer, wide,
};
use crate::fault_server::{Action, response};

/// What the tests expect of `kvplug-http.wasm`.
pub struct Backend;

impl BackendTests for Backend {
    const NAME: &'static str = "http";
    const VALUE_LIMIT: Option<ValueLimit> = None;
    // open checks the bucket with one HEAD; the server adds.
    const FEWEST: Fewest = Fewest {
        open: 1,
        increment: 1,
        increment_new: 1,
        batch_read: 1000,
        batch_write: 1000,
        batch_delete: 1000,
    };
    const MARK: Option<&'static str> = Some("kvplug-protocol: 1");
    const SIGNS: bool = false;
    const TAKES_TOKEN: bool = true;
    // kvplug-http has no `prefix`: the reference server keeps each bucket apart by protocol.
    const TAKES_PREFIX: bool = false;
    const EXACT_PAGES: bool = true;
    const CAS_COMPARES_VALUES: bool = false;

    fn name_limits() -> NameLimits {
        // The protocol's limits: 8 KiB keys, 1 KiB bucket names.
        NameLimits::new(
            wide(8192),
            "the 8192 bytes",
            wide(1024),
            Some((longer(&wide(1024)), "the 1024 bytes")),
        )
    }

    fn fault_settings(url: &str, secrets: &Secrets) -> Settings {
        token_settings(url, secrets)
    }

    fn configured_secrets(secrets: &Secrets) -> Vec<&'static str> {
        secrets.token.into_iter().collect()
    }

    fn error_body(message: &str) -> String {
        message.to_owned()
    }

    fn absent() -> Action {
        response(
            404,
            &["kvplug-protocol: 1", "kvplug-error: no-such-key"],
            b"no such key",
        )
    }

    fn requests() -> [&'static str; 11] {
        [
            "PUT /v1/buckets/b/keys/k:",
            "GET /v1/buckets/b/keys/k:",
            "DELETE /v1/buckets/b/keys/k:",
            "HEAD /v1/buckets/b/keys/k:",
            "GET /v1/buckets/b?limit=1000:",
            "POST /v1/buckets/b/keys/k?increment=1:",
            "GET /v1/buckets/b/keys/k:",
            "PUT /v1/buckets/b/keys/k:",
            "POST /v1/buckets/b/get-many:",
            "POST /v1/buckets/b/set-many:",
            "POST /v1/buckets/b/delete-many:",
        ]
    }

    fn oversized_batch() -> OversizedBatch {
        OversizedBatch {
            service: Box::new(Reference::start_with(|c| c.max_body = 1 << 20)),
            // Larger than one request of the adapter's (16 MiB), so it travels alone.
            size: 17 << 20,
            limit: "body larger than 1048576 bytes",
        }
    }
}

/// `url`, and `token` if `secrets` has one: the settings of the backends whose credential
/// is a token.
pub(crate) fn token_settings(url: &str, secrets: &Secrets) -> Settings {
    let mut s = crate::settings(url);
    if let Some(token) = secrets.token {
        s.push(("token".into(), token.into()));
    }
    s
}

/// kvplug-server with its data in a temporary directory.
pub struct Reference {
    pub server: kvplug_server::Server,
    _data: tempfile::TempDir,
}

impl Reference {
    pub fn start() -> Reference {
        Reference::start_with(|_| {})
    }

    /// A server with its configuration adjusted by `adjust`.
    pub fn start_with(adjust: impl FnOnce(&mut kvplug_server::Config)) -> Reference {
        let (data, server) = crate::reference_server_with(adjust);
        Reference {
            server,
            _data: data,
        }
    }
}

impl Service for Reference {
    fn backend(&self) -> &'static str {
        <Backend as BackendTests>::NAME
    }
    fn settings(&self) -> Settings {
        crate::settings(&self.server.url())
    }
}

impl TestService for Reference {
    type Backend = Backend;
    const NAME: &'static str = "http";
    const IMPLEMENTATION: &'static str = "kvplug-http.wasm + kvplug-server";
    const LABEL: &'static str = "kvplug-http";
    fn start_default() -> Reference {
        Reference::start()
    }
}
