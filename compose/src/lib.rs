//! Host-side tooling that users run in build pipelines: building the kvplug artifacts,
//! plugging an adapter into an application (what `wac plug` does, in-process), sealing
//! settings into an adapter, composing a watch-service app with its adapter and a watch
//! driver, and checking an artifact's imports against what an adapter may
//! import; which adapter an application links with; and the backend registry every list of
//! backends is derived from.

pub mod artifacts;
pub mod fit;
pub mod plug;
pub mod registry;
pub mod seal;
pub mod spin;
pub mod surface;
pub mod watch;
