//! Change feeds for the `watch-service` drivers (issue #15, docs/watch-design.md): each
//! backend that has one reads its service's own record of writes, from a saved position.
//!
//! A feed is opened per watched bucket. A position is the feed's own text (a sequence number,
//! a revision): the driver saves it and hands it back, and only the feed that made it reads
//! it. A batch's position covers every change of the batch and every change before it, so a
//! driver that saves it after delivering the batch never skips one, and one that crashes
//! before saving it delivers the batch again (at least once).

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::Error;
use crate::settings::Settings;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "redis")]
pub mod redis;

/// One write as the feed reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    /// The value written, or `None` for a delete (an expiry included).
    pub value: Option<Vec<u8>>,
}

/// Changes in commit order, and where the next read continues after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub changes: Vec<Change>,
    pub position: String,
}

/// Why a read failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lapse {
    /// The feed no longer holds every change after the position asked for (retention,
    /// compaction): changes were lost to this reader. `resume_after` is where the feed could
    /// continue, if it says.
    Gap {
        resume_after: Option<String>,
        detail: String,
    },
    /// Anything else; reading again later may work (a restart of the service, a stream cut).
    Failed(Error),
}

impl From<Error> for Lapse {
    fn from(error: Error) -> Lapse {
        Lapse::Failed(error)
    }
}

/// A backend's change feed for one bucket.
pub trait Feed: Sized {
    /// Opens the feed of `bucket`, limited to keys starting with `prefix` where the service
    /// can filter (the driver filters again, so a feed may ignore it).
    fn open(settings: &Settings, bucket: &str, prefix: &str) -> Result<Self, Error>;

    /// The position of "now": every change committed after this call is after it.
    fn head(&mut self) -> Result<String, Error>;

    /// The changes after `after`, oldest first; when there are none, waits up to `wait_ms`
    /// for one, then answers an empty batch at the same position.
    fn poll(&mut self, after: &str, wait_ms: u64) -> Result<Batch, Lapse>;

    /// Whether `position` is one this feed could have made (a saved position from another
    /// backend or a hand edit is refused before any read).
    fn valid(position: &str) -> bool;
}

/// A position that is a decimal number, as the reference server's and etcd's are.
pub fn decimal(position: &str) -> Option<u64> {
    if position.is_empty() || !position.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    position.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_positions_only() {
        assert_eq!(decimal("0"), Some(0));
        assert_eq!(decimal("18446744073709551615"), Some(u64::MAX));
        for bad in ["", "-1", "+1", " 1", "1a", "18446744073709551616"] {
            assert_eq!(decimal(bad), None, "{bad:?}");
        }
    }
}
