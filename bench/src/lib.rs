//! The benchmark's measurements, as a library so that the test suite can run them once with
//! a tiny repetition count to prove they work (no timing is asserted anywhere).

pub mod artifacts;
pub mod backends;
pub mod load;
pub mod memory;
pub mod reference_client;
pub mod report;
pub mod timing;
pub mod watch;
