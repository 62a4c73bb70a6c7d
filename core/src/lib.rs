//! The library behind every kvplug adapter: the HTTP client over `wasi:http`, the errors, the
//! [`Backend`](backend::Backend) trait with the mechanisms every backend shares, each backend
//! (one cargo feature each) and the request signing the cloud backends need.
//!
//! The component crate (`kvplug-adapter`) holds only the `wasi:keyvalue` export glue and picks
//! one backend per artifact. Everything here is `pub`, so one build with every backend enabled
//! is checked and tested once, and a build with one backend has no dead code to excuse.
//!
//! The adapter is linked into a user's component, so a trap here kills the user's program:
//! every failure is returned as an [`Error`](error::Error) instead. Hence the lints below, and
//! `no_std` on wasm, which keeps std's `wasi:cli` imports out of the artifact.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

pub mod backend;
pub mod bindings;
pub mod client;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
pub mod clock;
pub mod deadline;
pub mod error;
#[cfg(feature = "feed")]
pub mod feed;
pub mod redact;
pub mod settings;
#[cfg(any(feature = "dynamodb", feature = "azure-table"))]
pub mod signing;

/// In an artifact's crate (an adapter, a watch driver): checks that exactly one of the backend
/// features named is on, and writes its name into the `kvplug-backend` custom section, which
/// `kvplug seal` reads to check settings as that backend will. Each feature is named after
/// its backend (`kvplug_settings::backend::Backend::name`).
#[macro_export]
macro_rules! artifact_backend {
    ($($feature:literal),+ $(,)?) => {
        /// How many backend features this build enables: exactly one, since each artifact
        /// speaks to one service.
        const BACKENDS_ENABLED: usize = 0 $(+ cfg!(feature = $feature) as usize)+;
        const _: () = assert!(
            BACKENDS_ENABLED == 1,
            "enable exactly one backend feature, e.g. `--no-default-features --features etcd`"
        );
        $(
            #[cfg(feature = $feature)]
            const BACKEND_NAME: &str = $feature;
        )+
        #[expect(unsafe_code, reason = "a custom section is placed with `link_section`")]
        #[unsafe(link_section = "kvplug-backend")]
        #[used]
        static BACKEND_SECTION: [u8; BACKEND_NAME.len()] = match BACKEND_NAME
            .as_bytes()
            .first_chunk::<{ BACKEND_NAME.len() }>()
        {
            Some(bytes) => *bytes,
            None => [0; BACKEND_NAME.len()],
        };
    };
}

/// `wit_bindgen::generate!` for an artifact's world (`$world` in the WIT at `$path`), with
/// every import that `kvplug-core` also binds taken from [`bindings`], so there is one set of
/// `wasi:http` types across the crates.
#[macro_export]
macro_rules! bindings_over_core {
    ($path:tt, $world:literal) => {
        wit_bindgen::generate!({
            path: $path,
            world: $world,
            with: {
                "wasi:http/types@0.2.0": kvplug_core::bindings::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.0": kvplug_core::bindings::wasi::http::outgoing_handler,
                "wasi:config/store@0.2.0-rc.1": kvplug_core::bindings::wasi::config::store,
                "wasi:clocks/wall-clock@0.2.0": kvplug_core::bindings::wasi::clocks::wall_clock,
                "wasi:clocks/monotonic-clock@0.2.0": kvplug_core::bindings::wasi::clocks::monotonic_clock,
                "wasi:io/poll@0.2.0": kvplug_core::bindings::wasi::io::poll,
                "wasi:io/error@0.2.0": kvplug_core::bindings::wasi::io::error,
                "wasi:io/streams@0.2.0": kvplug_core::bindings::wasi::io::streams,
            },
            generate_all,
        });
    };
}
