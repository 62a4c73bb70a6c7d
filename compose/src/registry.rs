//! The backend registry: the one table every list of backends in this tree is derived from.
//!
//! [`BACKENDS`] is what the tooling reads (the artifacts `kvplug build` makes, `kvplug
//! backends`, the loop of `scripts/test`); [`foreach_backend!`](crate::foreach_backend) and
//! [`foreach_service!`](crate::foreach_service) are the same table for code that must be
//! generated per entry, in the style of wasmtime's `foreach_*!` macros: the test harness
//! generates one test module per test service from them, and refers, for each entry, to the
//! items a backend must have (its expectations, its test service), so a backend registered
//! without them does not compile. A unit test below checks that the macros and the table
//! agree; `docs/adding-a-backend.md` lists every step.

/// One backend: one adapter artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    /// The backend's name: `kvplug-<name>.wasm`, the settings' `Debug`, the test names.
    pub name: &'static str,
    /// The cargo feature of `kvplug-adapter` (and `kvplug-core`) that selects it.
    pub feature: &'static str,
    /// The file `kvplug build` writes under `target/kvplug/`.
    pub artifact: &'static str,
    /// The test services that stand for it (`kvplug-tests`' `services::start` names), in
    /// report order: the first is the one the benchmark measures.
    pub services: &'static [&'static str],
    /// Whether the artifact exports kvplug's extension, `kvplug:keyvalue/entries@0.1.0`
    /// (the adapter's `entries` feature; issue #14 brings it to every backend).
    pub entries: bool,
}

/// Every backend this tree builds, in report order.
pub const BACKENDS: &[Backend] = &[
    Backend {
        name: "http",
        feature: "http",
        artifact: "kvplug-http.wasm",
        services: &["http"],
        entries: true,
    },
    Backend {
        name: "etcd",
        feature: "etcd",
        artifact: "kvplug-etcd.wasm",
        services: &["etcd"],
        entries: true,
    },
    Backend {
        name: "redis",
        feature: "redis",
        artifact: "kvplug-redis.wasm",
        services: &["redis"],
        entries: true,
    },
    Backend {
        name: "dynamodb",
        feature: "dynamodb",
        artifact: "kvplug-dynamodb.wasm",
        services: &["dynalite", "moto"],
        entries: true,
    },
    Backend {
        name: "azure-table",
        feature: "azure-table",
        artifact: "kvplug-azure-table.wasm",
        services: &["azurite"],
        entries: true,
    },
];

/// The backend named `name`, if registered.
pub fn backend(name: &str) -> Option<&'static Backend> {
    BACKENDS.iter().find(|backend| backend.name == name)
}

/// The names of [`BACKENDS`], in order.
#[expect(
    clippy::indexing_slicing,
    reason = "const evaluation: an index out of bounds fails the build"
)]
pub const NAMES: [&str; BACKENDS.len()] = {
    let mut names = [""; BACKENDS.len()];
    let mut i = 0;
    while i < BACKENDS.len() {
        names[i] = BACKENDS[i].name;
        i += 1;
    }
    names
};

/// Calls `$callback!(<ident>, "<name>" [; <extra tokens>])` once per entry of
/// [`BACKENDS`], in order: `<ident>` is the backend's name as an identifier (`-` becomes
/// `_`), the name of its module in `tests/src/services/`. Extra tokens after `;` are passed
/// on to every call.
#[macro_export]
macro_rules! foreach_backend {
    ($callback:path $(; $($extra:tt)*)?) => {
        $callback!(http, "http" $(; $($extra)*)?);
        $callback!(etcd, "etcd" $(; $($extra)*)?);
        $callback!(redis, "redis" $(; $($extra)*)?);
        $callback!(dynamodb, "dynamodb" $(; $($extra)*)?);
        $callback!(azure_table, "azure-table" $(; $($extra)*)?);
    };
}

/// Calls `$callback!(<ident>, "<service>", <backend ident>, <Type> [; <extra tokens>])` once
/// per test service of every entry of [`BACKENDS`], in order: `<Type>` is the service's type
/// in `tests/src/services/<backend ident>.rs`. Extra tokens after `;` are passed on.
#[macro_export]
macro_rules! foreach_service {
    ($callback:path $(; $($extra:tt)*)?) => {
        $callback!(http, "http", http, Reference $(; $($extra)*)?);
        $callback!(etcd, "etcd", etcd, Etcd $(; $($extra)*)?);
        $callback!(redis, "redis", redis, Redis $(; $($extra)*)?);
        $callback!(dynalite, "dynalite", dynamodb, Dynalite $(; $($extra)*)?);
        $callback!(moto, "moto", dynamodb, Moto $(; $($extra)*)?);
        $callback!(azurite, "azurite", azure_table, Azurite $(; $($extra)*)?);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! push_backend {
        ($ident:ident, $name:literal; $into:ident) => {
            $into.extend([(stringify!($ident), $name)]);
        };
    }

    macro_rules! push_service {
        ($ident:ident, $name:literal, $backend:ident, $ty:ident; $into:ident) => {
            $into.extend([(stringify!($ident), $name, stringify!($backend))]);
        };
    }

    fn ident(name: &str) -> String {
        name.replace('-', "_")
    }

    #[test]
    fn the_macros_list_exactly_the_table() {
        let mut backends: Vec<(&str, &str)> = Vec::new();
        crate::foreach_backend!(push_backend; backends);
        let expected: Vec<(String, &str)> = BACKENDS
            .iter()
            .map(|backend| (ident(backend.name), backend.name))
            .collect();
        let found: Vec<(String, &str)> = backends
            .iter()
            .map(|(ident, name)| ((*ident).to_owned(), *name))
            .collect();
        assert_eq!(found, expected, "foreach_backend! and BACKENDS differ");

        let mut services: Vec<(&str, &str, &str)> = Vec::new();
        crate::foreach_service!(push_service; services);
        let expected: Vec<(String, &str, String)> = BACKENDS
            .iter()
            .flat_map(|backend| {
                backend
                    .services
                    .iter()
                    .map(|service| (ident(service), *service, ident(backend.name)))
            })
            .collect();
        let found: Vec<(String, &str, String)> = services
            .iter()
            .map(|(ident, name, backend)| ((*ident).to_owned(), *name, (*backend).to_owned()))
            .collect();
        assert_eq!(found, expected, "foreach_service! and BACKENDS differ");
    }

    #[test]
    fn names_features_and_artifacts_are_unique_and_consistent() {
        for (i, backend) in BACKENDS.iter().enumerate() {
            assert_eq!(backend.artifact, format!("kvplug-{}.wasm", backend.name));
            assert!(
                !backend.services.is_empty(),
                "{}: no test service",
                backend.name
            );
            assert_eq!(NAMES[i], backend.name);
            for other in &BACKENDS[..i] {
                assert_ne!(other.name, backend.name);
                assert_ne!(other.feature, backend.feature);
                for service in backend.services {
                    assert!(!other.services.contains(service), "{service} twice");
                }
            }
        }
    }

    #[test]
    fn the_settings_crate_knows_the_same_backends() {
        // Sealing checks settings per `kvplug_settings::backend::Backend`, which the adapter
        // names in its `kvplug-backend` section: it must know every registered backend.
        let known: Vec<&str> = kvplug_settings::backend::Backend::ALL
            .iter()
            .map(|backend| backend.name())
            .collect();
        assert_eq!(known, NAMES);
    }
}
