//! Where the driver keeps, per watched bucket, the position of the last batch it delivered:
//! in the bucket `kvplug-watch` of the very store it watches, written through the adapter (so
//! the adapter's own settings, allow-list and credentials apply, and no second store is
//! needed), under `<watch-id>/<bucket>`.
//!
//! A record is `<position> <starts>`: `starts` counts the driver's starts at this position
//! since a batch after it was last delivered; a watcher that traps on a batch makes every
//! start end at the same position, so the count is what stops a crash loop.

use alloc::format;
use alloc::string::{String, ToString};

use crate::bindings::store;
use crate::driver::Failure;
use crate::settings::POSITIONS_BUCKET;

pub struct Positions {
    bucket: store::Bucket,
    id: String,
}

/// A saved record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub position: String,
    pub starts: u32,
}

impl Saved {
    fn encode(&self) -> String {
        format!("{} {}", self.position, self.starts)
    }

    fn decode(text: &str) -> Option<Saved> {
        let (position, starts) = text.split_once(' ')?;
        Some(Saved {
            position: position.to_string(),
            starts: starts.parse().ok()?,
        })
    }
}

impl Positions {
    pub fn open(id: &str) -> Result<Positions, Failure> {
        let bucket = store::open(POSITIONS_BUCKET).map_err(|e| {
            let hint = match e {
                store::Error::AccessDenied => {
                    " (if the adapter's `buckets` setting is an allow-list, add it there)"
                }
                _ => "",
            };
            Failure::store(&e, |message| {
                format!(
                    "cannot open bucket `{POSITIONS_BUCKET}`, where the driver saves its \
                     positions: {message}{hint}"
                )
            })
        })?;
        Ok(Positions {
            bucket,
            id: id.to_string(),
        })
    }

    fn key(&self, bucket: &str) -> String {
        format!("{}/{bucket}", self.id)
    }

    pub fn load(&self, bucket: &str) -> Result<Option<Saved>, Failure> {
        let key = self.key(bucket);
        let Some(bytes) = self.bucket.get(&key).map_err(|e| {
            Failure::store(&e, |message| {
                format!("cannot read the saved position `{key}` of bucket `{POSITIONS_BUCKET}`: {message}")
            })
        })?
        else {
            return Ok(None);
        };
        core::str::from_utf8(&bytes)
            .ok()
            .and_then(Saved::decode)
            .map(Some)
            .ok_or_else(|| Failure {
                message: format!(
                    "the saved position `{key}` in bucket `{POSITIONS_BUCKET}` is not one a \
                     driver wrote; delete it to start from now"
                ),
                lasting: true,
            })
    }

    pub fn save(&self, bucket: &str, saved: &Saved) -> Result<(), Failure> {
        let key = self.key(bucket);
        self.bucket
            .set(&key, saved.encode().as_bytes())
            .map_err(|e| {
                Failure::store(&e, |message| {
                    format!(
                        "cannot save the position `{key}` in bucket `{POSITIONS_BUCKET}`: {message}"
                    )
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Saved;

    #[test]
    fn records_round_trip() {
        let saved = Saved {
            position: "123".into(),
            starts: 2,
        };
        assert_eq!(Saved::decode(&saved.encode()), Some(saved));
        for bad in ["", "123", "123 x", "123 -1"] {
            assert_eq!(Saved::decode(bad), None, "{bad:?}");
        }
    }
}
