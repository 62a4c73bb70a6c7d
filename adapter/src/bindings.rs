//! Bindings for the adapter's world: the exports are generated here, the imports are
//! `kvplug-core`'s.

// A backend that carries `kvplug:keyvalue/entries` exports it too: `wit/`, then the
// extension, then the world joining them, each resolving against what came before.
#[cfg(feature = "entries")]
kvplug_core::bindings_over_core!(
    [
        "../wit",
        "../wit/keyvalue/entries.wit",
        "../wit/extended/worlds.wit"
    ],
    "kvplug:extended/adapter"
);

#[cfg(not(feature = "entries"))]
kvplug_core::bindings_over_core!("../wit", "kvplug:adapter/adapter");
