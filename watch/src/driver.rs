//! The driver's loop: open every watched bucket's feed at its saved position, then, round after
//! round, read each feed and deliver what it says, saving the position after each batch.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use kvplug_core::bindings::wasi::clocks::monotonic_clock;
use kvplug_core::error::Error;
use kvplug_core::feed::{Batch, Change, Feed, Lapse};

use crate::bindings::{Cursor, describe, list_page, store, watcher};
use crate::log;
use crate::positions::{Positions, Saved};
use crate::settings::{self, OnGap, POSITIONS_BUCKET};

const MS: u64 = 1_000_000;
/// The first pause after a failure; it doubles up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: u64 = 100;
const MAX_BACKOFF_MS: u64 = 10_000;

fn sleep_ms(ms: u64) {
    monotonic_clock::subscribe_duration(ms.saturating_mul(MS)).block();
}

fn elapsed_ms(since: u64) -> u64 {
    monotonic_clock::now().saturating_sub(since) / MS
}

/// Retries what fails for a reason that may pass (a service restarting), with backoff, until
/// `watch-retry-ms` has gone by since the first failure.
struct Retry {
    limit_ms: u64,
    failing_since: Option<u64>,
    backoff_ms: u64,
}

impl Retry {
    fn new(limit_ms: u64) -> Retry {
        Retry {
            limit_ms,
            failing_since: None,
            backoff_ms: FIRST_BACKOFF_MS,
        }
    }

    fn succeeded(&mut self) {
        self.failing_since = None;
        self.backoff_ms = FIRST_BACKOFF_MS;
    }

    /// After a failure: waits and returns `Ok` to try again, or `Err` once failures have
    /// lasted longer than the limit.
    fn failed(&mut self, what: &str, error: &str) -> Result<(), String> {
        let since = *self.failing_since.get_or_insert_with(monotonic_clock::now);
        let lasted = elapsed_ms(since);
        if lasted >= self.limit_ms {
            return Err(format!(
                "{what}: {error} (failing for {lasted} ms, `watch-retry-ms` is {})",
                self.limit_ms
            ));
        }
        log::line(&format!(
            "kvplug-watch: {what}: {error}; retrying in {} ms",
            self.backoff_ms
        ));
        sleep_ms(self.backoff_ms);
        self.backoff_ms = (self.backoff_ms * 2).min(MAX_BACKOFF_MS);
        Ok(())
    }

    fn run<T>(
        &mut self,
        what: &str,
        mut step: impl FnMut() -> Result<T, Failure>,
    ) -> Result<T, String> {
        loop {
            match step() {
                Ok(value) => {
                    self.succeeded();
                    return Ok(value);
                }
                Err(Failure { message, lasting }) if lasting => {
                    return Err(format!("{what}: {message}"));
                }
                Err(Failure { message, .. }) => self.failed(what, &message)?,
            }
        }
    }
}

/// Why a step failed, and whether trying again could help.
pub struct Failure {
    pub message: String,
    /// A refusal that retrying cannot change: access denied, no such store, wrong settings.
    pub lasting: bool,
}

impl Failure {
    /// A store error of the adapter, as the app would see it.
    pub fn store(error: &store::Error, context: impl FnOnce(String) -> String) -> Failure {
        Failure {
            message: context(describe(error)),
            lasting: matches!(
                error,
                store::Error::AccessDenied | store::Error::NoSuchStore
            ),
        }
    }

    /// A feed's error.
    fn feed(error: &Error) -> Failure {
        let lasting = match error {
            Error::AccessDenied | Error::NoSuchStore | Error::Settings(_) | Error::Invalid(_) => {
                true
            }
            // A client error other than a timeout or throttling is a request the service
            // will refuse again (a server without the feed answers 404).
            Error::Status { status, .. } => {
                (400..500).contains(status) && !matches!(status, 408 | 429)
            }
            _ => false,
        };
        Failure {
            message: error.to_string(),
            lasting,
        }
    }
}

/// One watched bucket.
struct Followed<F> {
    bucket: String,
    feed: F,
    position: String,
    /// Starts at `position` without a delivered batch since (see [`Saved::starts`]).
    starts: u32,
    /// Whether `position` differs from the saved one (after a skipped gap).
    unsaved: bool,
}

/// Runs until a limit is reached (`Ok` with a summary) or the driver must stop (`Err` with
/// the reason).
pub fn run<F: Feed>() -> Result<String, String> {
    let started = monotonic_clock::now();
    let mut settings = kvplug_core::settings::load().map_err(|e| e.to_string())?;
    let watch = settings::load().map_err(|e| format!("kvplug settings: {e}"))?;
    // A long poll waits `watch-wait-ms` inside one request, and a stream is silent up to
    // `watch-idle-ms`: the adapter's per-call limits must leave room for both.
    settings.timeout_ms = settings
        .timeout_ms
        .max(watch.wait_ms.saturating_add(10_000));
    settings.idle_timeout_ms = watch.idle_ms;
    let mut retry = Retry::new(watch.retry_ms);

    let positions = retry.run("opening the positions' bucket", || {
        Positions::open(&watch.id)
    })?;
    let mut followed = Vec::with_capacity(watch.buckets.len());
    for bucket in &watch.buckets {
        // Through the adapter: its allow-list decides, so the driver sees no bucket the app
        // could not open.
        store::open(bucket).map_err(|e| {
            format!(
                "cannot open bucket `{bucket}` through the adapter: {}",
                describe(&e)
            )
        })?;
        let mut feed = F::open(&settings, bucket, &watch.prefix)
            .map_err(|e| format!("bucket `{bucket}`: {e}"))?;
        let what = format!("bucket `{bucket}`");
        let saved = retry.run(&what, || positions.load(bucket))?;
        let (position, starts) = match saved {
            Some(saved) if !F::valid(&saved.position) => {
                return Err(format!(
                    "the saved position of bucket `{bucket}` (`{}` in bucket `{POSITIONS_BUCKET}`) \
                     is not one this backend's feed makes; delete it to start from now",
                    saved.position
                ));
            }
            Some(saved) => (saved.position, saved.starts.saturating_add(1)),
            // The first start begins at the feed's head, saved at once: a driver that dies
            // before its first batch still resumes from there, not from a later head.
            None => (
                retry.run(&what, || feed.head().map_err(|e| Failure::feed(&e)))?,
                0,
            ),
        };
        if starts > watch.max_attempts {
            return Err(format!(
                "bucket `{bucket}`: the driver started {starts} times at position {position} \
                 without delivering the changes after it (the watcher trapped, or the driver was \
                 stopped while it ran); not delivering them again. Fix the watcher and raise \
                 `watch-max-attempts`, or delete `{}/{bucket}` in bucket `{POSITIONS_BUCKET}` to \
                 skip to the newest changes",
                watch.id
            ));
        }
        let record = Saved {
            position: position.clone(),
            starts,
        };
        retry.run(&what, || positions.save(bucket, &record))?;
        log::line(&format!(
            "kvplug-watch: following bucket `{bucket}` after position {position}{}",
            if starts > 1 {
                format!(" (start {starts} there)")
            } else {
                String::new()
            }
        ));
        followed.push(Followed {
            bucket: bucket.clone(),
            feed,
            position,
            starts,
            unsaved: false,
        });
    }
    // A batch that did not return last time is delivered again only after a pause that grows
    // with each such start.
    if let Some(starts) = followed.iter().map(|f| f.starts).filter(|&s| s > 1).max() {
        sleep_ms((FIRST_BACKOFF_MS << (starts - 1).min(7)).min(MAX_BACKOFF_MS));
    }

    let count = u64::try_from(followed.len()).unwrap_or(1).max(1);
    let mut delivered: u64 = 0;
    loop {
        for f in &mut followed {
            let mut wait_ms = (watch.wait_ms / count).max(100).min(watch.wait_ms);
            if let Some(seconds) = watch.max_seconds {
                let left = seconds
                    .saturating_mul(1000)
                    .saturating_sub(elapsed_ms(started));
                if left == 0 {
                    return Ok(summary(delivered, started));
                }
                wait_ms = wait_ms.min(left);
            }
            match f.feed.poll(&f.position, wait_ms) {
                Ok(batch) => {
                    retry.succeeded();
                    delivered += deliver(&f.bucket, &watch, &batch, &mut retry)?;
                    if batch.position != f.position || f.starts > 0 || f.unsaved {
                        let record = Saved {
                            position: batch.position.clone(),
                            starts: 0,
                        };
                        let what = format!("bucket `{}`", f.bucket);
                        retry.run(&what, || positions.save(&f.bucket, &record))?;
                        f.position = batch.position;
                        f.starts = 0;
                        f.unsaved = false;
                    }
                }
                Err(Lapse::Gap {
                    resume_after,
                    detail,
                }) => {
                    let lost = format!(
                        "bucket `{}`: {detail}; the changes after position {} are lost to this \
                         driver",
                        f.bucket, f.position
                    );
                    let what = format!("bucket `{}`", f.bucket);
                    let (to, said) = match (watch.on_gap, resume_after) {
                        (OnGap::Skip, resumed) => {
                            let to = match resumed {
                                Some(to) => to,
                                None => retry
                                    .run(&what, || f.feed.head().map_err(|e| Failure::feed(&e)))?,
                            };
                            let said = format!("kvplug-watch: {lost}; skipping to position {to}");
                            (to, said)
                        }
                        (OnGap::Resync, _) => {
                            // The head first: what is written while the bucket is listed
                            // comes again from the feed after it.
                            let to = retry
                                .run(&what, || f.feed.head().map_err(|e| Failure::feed(&e)))?;
                            log::line(&format!("kvplug-watch: {lost}; resyncing the bucket"));
                            let resynced = resync(&f.bucket, &watch, &mut retry)?;
                            delivered += resynced;
                            let said = format!(
                                "kvplug-watch: {what}: resynced {resynced} key(s) with their \
                                 current values (keys deleted during the gap are not \
                                 delivered); following after position {to}"
                            );
                            (to, said)
                        }
                        (OnGap::Stop, _) => {
                            return Err(format!(
                                "{lost}. Set `watch-on-gap=resync` to deliver every key's \
                                 current value and go on, or `watch-on-gap=skip` to go on from \
                                 where the feed now starts, or delete `{}/{}` in bucket \
                                 `{POSITIONS_BUCKET}` to start from now",
                                watch.id, f.bucket
                            ));
                        }
                    };
                    log::line(&said);
                    // Saved with the next batch, not now: this write would itself be a change,
                    // and a feed that keeps little could drop `to` because of it.
                    f.position = to;
                    f.unsaved = true;
                }
                Err(Lapse::Failed(error)) => {
                    let what = format!("bucket `{}`", f.bucket);
                    let failure = Failure::feed(&error);
                    if failure.lasting {
                        return Err(format!("{what}: {}", failure.message));
                    }
                    retry.failed(&what, &failure.message)?;
                }
            }
            if watch.max_events.is_some_and(|max| delivered >= max) {
                return Ok(summary(delivered, started));
            }
        }
    }
}

fn summary(delivered: u64, started: u64) -> String {
    format!(
        "kvplug-watch: delivered {delivered} change(s) in {} ms",
        elapsed_ms(started)
    )
}

/// Calls `on-set` with the current value of every key of `bucket` under the prefix, listed
/// and read through the adapter; returns how many. A key deleted after it was listed is
/// passed over (its delete comes from the feed).
fn resync(bucket: &str, watch: &settings::WatchSettings, retry: &mut Retry) -> Result<u64, String> {
    let what = format!("bucket `{bucket}`");
    let reading = retry.run(&what, || {
        store::open(bucket).map_err(|e| Failure::store(&e, |m| m))
    })?;
    let mut cursor: Option<Cursor> = None;
    let mut delivered = 0;
    loop {
        let (keys, next) = retry.run(&what, || {
            list_page(&reading, cursor.as_ref())
                .map_err(|e| Failure::store(&e, |m| format!("listing it to resync: {m}")))
        })?;
        for key in keys.iter().filter(|k| k.starts_with(watch.prefix.as_str())) {
            let value = retry.run(&what, || {
                reading
                    .get(key)
                    .map_err(|e| Failure::store(&e, |m| format!("reading `{key}` to resync: {m}")))
            })?;
            let Some(value) = value else {
                continue;
            };
            // `on-set` takes the handle: each call gets one of its own.
            let handle = retry.run(&what, || {
                store::open(bucket).map_err(|e| Failure::store(&e, |m| m))
            })?;
            watcher::on_set(handle, key, &value);
            delivered += 1;
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(delivered),
        }
    }
}

/// Calls the watcher for every change of `batch` under the prefix; returns how many.
fn deliver(
    bucket: &str,
    watch: &settings::WatchSettings,
    batch: &Batch,
    retry: &mut Retry,
) -> Result<u64, String> {
    let mut delivered = 0;
    for Change { key, value } in &batch.changes {
        if !key.starts_with(watch.prefix.as_str()) {
            continue;
        }
        // `on-set` takes the handle: each call gets one of its own.
        let what = format!("bucket `{bucket}`");
        let handle = retry.run(&what, || {
            store::open(bucket).map_err(|e| Failure::store(&e, |m| m))
        })?;
        match value {
            Some(value) => watcher::on_set(handle, key, value),
            None => watcher::on_delete(handle, key),
        }
        delivered += 1;
    }
    Ok(delivered)
}
