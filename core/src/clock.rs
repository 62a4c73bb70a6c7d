//! Time for the signing backends: the wall clock that signatures carry, and the waits
//! between retries of a throttled request.

use alloc::string::String;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::bindings::wasi::clocks::{monotonic_clock, wall_clock};

/// A UTC instant, split into the fields the signature formats need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

impl Utc {
    /// Now, by the host's wall clock.
    pub fn now() -> Utc {
        Utc::from_unix(i64::try_from(wall_clock::now().seconds).unwrap_or(i64::MAX))
    }

    /// The instant `seconds` after 1970-01-01T00:00:00Z.
    pub fn from_unix(seconds: i64) -> Utc {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400);
        // Civil date from a day count (Howard Hinnant's `civil_from_days`), in eras of
        // 400 years that start on 1 March.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let shifted_month = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
        let month = if shifted_month < 10 {
            shifted_month + 3
        } else {
            shifted_month - 9
        };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        // Fields are in range by construction; `as` cannot truncate them.
        Utc {
            year,
            month: month as u32,
            day: day as u32,
            hour: (of_day / 3600) as u32,
            minute: (of_day / 60 % 60) as u32,
            second: (of_day % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
        }
    }

    /// `20150830`: the date of an AWS credential scope.
    pub fn basic_date(&self) -> String {
        let mut out = String::with_capacity(8);
        let _ = write!(out, "{:04}{:02}{:02}", self.year, self.month, self.day);
        out
    }

    /// `20150830T123600Z`: AWS's `x-amz-date`.
    pub fn basic_date_time(&self) -> String {
        let mut out = self.basic_date();
        let _ = write!(
            out,
            "T{:02}{:02}{:02}Z",
            self.hour, self.minute, self.second
        );
        out
    }

    /// `Sun, 30 Aug 2015 12:36:00 GMT`: the HTTP date Azure's `x-ms-date` takes.
    pub fn http_date(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let weekday = DAYS.get(self.weekday as usize).copied().unwrap_or("Sun");
        let month = MONTHS
            .get((self.month as usize).wrapping_sub(1))
            .copied()
            .unwrap_or("Jan");
        let mut out = String::with_capacity(29);
        let _ = write!(
            out,
            "{weekday}, {:02} {month} {:04} {:02}:{:02}:{:02} GMT",
            self.day, self.year, self.hour, self.minute, self.second
        );
        out
    }
}

/// A token no other write is likely to produce: the wall clock to the nanosecond, the
/// monotonic clock and a per-instance sequence number. Versions of DynamoDB items are these
/// tokens, so that a batch write (which cannot increment a stored counter) can still give
/// each item a version no compare-and-swap holds.
pub fn unique_token() -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let wall = wall_clock::now();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(40);
    let _ = write!(
        out,
        "{:x}.{:x}.{:x}.{sequence:x}",
        wall.seconds,
        wall.nanoseconds,
        monotonic_clock::now()
    );
    out
}

/// The wait before retry `attempt` (0-based) of a throttled request: exponential from
/// `base_ms`, capped, with "full jitter" so that many throttled instances do not retry in
/// step. The jitter comes from the monotonic clock's low bits: no randomness import needed.
pub fn backoff_ms(attempt: u32, base_ms: u64, cap_ms: u64) -> u64 {
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(16)).min(cap_ms);
    let noise = monotonic_clock::now() / 1000;
    // At least half the ceiling, so that a retry never comes back at once.
    ceiling / 2 + noise % (ceiling / 2 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // 2015-08-30T12:36:00Z, the date of AWS's Signature Version 4 test suite.
        let t = Utc::from_unix(1_440_938_160);
        assert_eq!(t.basic_date_time(), "20150830T123600Z");
        assert_eq!(t.http_date(), "Sun, 30 Aug 2015 12:36:00 GMT");
        assert_eq!(
            Utc::from_unix(0).http_date(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
        // A leap day, and the last second of a year.
        assert_eq!(
            Utc::from_unix(951_782_400).http_date(),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            Utc::from_unix(1_798_761_599).basic_date_time(),
            "20261231T235959Z"
        );
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // Walks 1970..2100 day by day: month lengths, leap years and weekdays all line up.
        let mut previous = Utc::from_unix(0);
        for day in 1..47_482 {
            let t = Utc::from_unix(day * 86_400);
            assert_eq!(t.weekday, (previous.weekday + 1) % 7);
            if t.day == 1 {
                assert!(previous.day >= 28);
                assert_eq!(t.month, previous.month % 12 + 1);
            } else {
                assert_eq!(
                    (t.year, t.month, t.day),
                    (previous.year, previous.month, previous.day + 1)
                );
            }
            previous = t;
        }
        assert_eq!(
            (previous.year, previous.month, previous.day),
            (2099, 12, 31)
        );
    }
}
