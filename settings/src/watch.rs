//! A watch driver's own settings (`kvplug-watch-<backend>.wasm`, issue #15), read beside the
//! adapter's (`url`, `token`, …, which the driver reads too, to reach the same service). Every
//! name starts with `watch-`, so none can mean something else to the adapter. Parsed here so
//! that `kvplug seal` accepts exactly what the driver does.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The bucket where positions are saved, through the adapter.
pub const POSITIONS_BUCKET: &str = "kvplug-watch";

/// What to do when the feed no longer holds the changes after a saved position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnGap {
    /// Stop with an error that names the bucket and both positions (the default: a gap is
    /// lost changes, and only the user can decide that is acceptable).
    Stop,
    /// Say so on stderr and continue from where the feed now starts.
    Skip,
    /// Say so on stderr, call `on-set` with the current value of every key of the bucket
    /// (listed through the adapter), then continue from the feed's head, read before the
    /// listing. Deletes made during the gap are not seen.
    Resync,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSettings {
    /// `watch-buckets`: the buckets to follow, in the order each round reads them; separated
    /// by commas or spaces (wasmtime's `-S config-var=` cannot carry a comma).
    pub buckets: Vec<String>,
    /// `watch-prefix`: only keys starting with it are delivered.
    pub prefix: String,
    /// `watch-id`: names this driver's saved positions, so two drivers on one store do not
    /// share them.
    pub id: String,
    /// `watch-max-events`: stop (successfully) once this many changes were delivered.
    pub max_events: Option<u64>,
    /// `watch-max-seconds`: stop (successfully) after this long.
    pub max_seconds: Option<u64>,
    /// `watch-wait-ms`: how long one read of the feed waits for a change.
    pub wait_ms: u64,
    /// `watch-idle-ms`: silence after which a streamed feed is reopened.
    pub idle_ms: u64,
    /// `watch-retry-ms`: how long a failing feed is retried, with backoff, before the driver
    /// stops.
    pub retry_ms: u64,
    /// `watch-max-attempts`: starts at one position (each a delivery that did not return)
    /// before the driver refuses to deliver that batch again.
    pub max_attempts: u32,
    /// `watch-on-gap`: `stop`, `skip` or `resync`.
    pub on_gap: OnGap,
}

/// Every setting a driver reads besides the adapter's ([`crate::NAMES`]).
pub const NAMES: [&str; 10] = [
    "watch-buckets",
    "watch-prefix",
    "watch-id",
    "watch-max-events",
    "watch-max-seconds",
    "watch-wait-ms",
    "watch-idle-ms",
    "watch-retry-ms",
    "watch-max-attempts",
    "watch-on-gap",
];

const DEFAULT_WAIT_MS: u64 = 25_000;
const DEFAULT_IDLE_MS: u64 = 60_000;
const DEFAULT_RETRY_MS: u64 = 60_000;
const DEFAULT_MAX_ATTEMPTS: u32 = 5;

fn number(name: &str, text: &str, min: u64, max: u64) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| format!("`{name}` must be a whole number from {min} to {max}, not `{text}`"))
}

/// A name a user typed into a setting: control characters in it are a mistake (a stray
/// newline from a file), never a key or bucket.
fn printable(name: &str, text: &str) -> Result<(), String> {
    match text.chars().find(|c| c.is_control()) {
        Some(c) => Err(format!(
            "`{name}` holds the control character U+{:04X}; no bucket or key prefix does",
            u32::from(c)
        )),
        None => Ok(()),
    }
}

impl WatchSettings {
    pub fn from_lookup(
        mut lookup: impl FnMut(&str) -> Result<Option<String>, String>,
    ) -> Result<WatchSettings, String> {
        let list = lookup("watch-buckets")?.unwrap_or_default();
        let mut buckets: Vec<String> = Vec::new();
        for bucket in crate::parse_names(&list) {
            let bucket = bucket.as_str();
            printable("watch-buckets", bucket)?;
            if bucket == POSITIONS_BUCKET {
                return Err(format!(
                    "`watch-buckets` names `{POSITIONS_BUCKET}`, where the driver saves its own \
                     positions: watching it would deliver the driver's own writes"
                ));
            }
            if !buckets.iter().any(|b| b == bucket) {
                buckets.push(bucket.to_string());
            }
        }
        if buckets.is_empty() {
            return Err(String::from(
                "`watch-buckets` is not set; name the buckets to watch, e.g. watch-buckets=orders,users",
            ));
        }
        let prefix = lookup("watch-prefix")?.unwrap_or_default();
        printable("watch-prefix", &prefix)?;
        let id = lookup("watch-id")?
            .map(|id| id.trim().to_string())
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| String::from("default"));
        printable("watch-id", &id)?;
        let mut optional = |name: &str, min: u64, max: u64| -> Result<Option<u64>, String> {
            lookup(name)?
                .map(|text| number(name, &text, min, max))
                .transpose()
        };
        let max_events = optional("watch-max-events", 1, u64::MAX)?;
        let max_seconds = optional("watch-max-seconds", 1, 365 * 24 * 3600)?;
        let wait_ms = optional("watch-wait-ms", 1, 30_000)?.unwrap_or(DEFAULT_WAIT_MS);
        let idle_ms = optional("watch-idle-ms", 1000, 3_600_000)?.unwrap_or(DEFAULT_IDLE_MS);
        let retry_ms = optional("watch-retry-ms", 0, 24 * 3_600_000)?.unwrap_or(DEFAULT_RETRY_MS);
        let max_attempts = optional("watch-max-attempts", 1, 1000)?
            .map_or(DEFAULT_MAX_ATTEMPTS, |n| {
                u32::try_from(n).unwrap_or(u32::MAX)
            });
        if idle_ms <= wait_ms {
            return Err(format!(
                "`watch-idle-ms` ({idle_ms}) must be longer than `watch-wait-ms` ({wait_ms}): a \
                 read that waits its full time is not a silent connection"
            ));
        }
        let on_gap = match lookup("watch-on-gap")?.as_deref().map(str::trim) {
            None | Some("stop") => OnGap::Stop,
            Some("skip") => OnGap::Skip,
            Some("resync") => OnGap::Resync,
            Some(other) => {
                return Err(format!(
                    "`watch-on-gap` is `stop`, `skip` or `resync`, not `{other}`"
                ));
            }
        };
        Ok(WatchSettings {
            buckets,
            prefix,
            id,
            max_events,
            max_seconds,
            wait_ms,
            idle_ms,
            retry_ms,
            max_attempts,
            on_gap,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn parse(pairs: &[(&str, &str)]) -> Result<WatchSettings, String> {
        WatchSettings::from_lookup(|name| {
            Ok(pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string()))
        })
    }

    #[test]
    fn defaults_and_lists() {
        let s = parse(&[("watch-buckets", " a, b ,a,, c d")]).unwrap();
        assert_eq!(s.buckets, ["a", "b", "c d"]);
        let spaced = parse(&[("watch-buckets", "a  b a")]).unwrap();
        assert_eq!(spaced.buckets, ["a", "b"]);
        assert_eq!((s.id.as_str(), s.prefix.as_str()), ("default", ""));
        assert_eq!(
            (s.wait_ms, s.idle_ms, s.on_gap),
            (25_000, 60_000, OnGap::Stop)
        );
        assert_eq!((s.max_events, s.max_seconds), (None, None));
    }

    #[test]
    fn mistakes_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "`watch-buckets` is not set"),
            (&[("watch-buckets", " , ")], "`watch-buckets` is not set"),
            (&[("watch-buckets", "kvplug-watch")], "saves its own"),
            (&[("watch-buckets", "a\nb")], "U+000A"),
            (
                &[("watch-buckets", "a"), ("watch-prefix", "p\0")],
                "`watch-prefix`",
            ),
            (
                &[("watch-buckets", "a"), ("watch-wait-ms", "0")],
                "`watch-wait-ms`",
            ),
            (
                &[("watch-buckets", "a"), ("watch-wait-ms", "40000")],
                "1 to 30000",
            ),
            (
                &[("watch-buckets", "a"), ("watch-max-events", "-3")],
                "`watch-max-events`",
            ),
            (
                &[("watch-buckets", "a"), ("watch-on-gap", "relist")],
                "not `relist`",
            ),
            (
                &[
                    ("watch-buckets", "a"),
                    ("watch-wait-ms", "5000"),
                    ("watch-idle-ms", "5000"),
                ],
                "longer than",
            ),
        ];
        for (pairs, expected) in cases {
            let error = parse(pairs).unwrap_err();
            assert!(error.contains(expected), "{pairs:?}: {error}");
        }
    }
}
