//! The watch drivers' change-feed readers (`kvplug_core::feed`). Input: one selector byte `s`,
//! then a page, a message or a position. `s % 5` picks the reader; `s / 5` (0 to 50) stands
//! for the position read after:
//!
//! 0. `http::read_page` (a page of kvplug-server's feed): the last position is after the
//!    one read after, and past it when a change came;
//! 1. `etcd::read_message` (one line of a `/v3/watch` stream) over the keys under `""` or
//!    `kv!b/` (`s / 5 % 2`): the revision read through never goes back;
//! 2. `dynamodb::read_records` (a `GetRecords` answer) for partition `!b`, keys under `""` or
//!    `a`, after no sequence number or `100`: every change's key has the prefix, no more
//!    changes than records, a last sequence number exactly when there were records;
//! 3. `redis::read_answer` (a READ_CHANGES answer) after `<s/5>-0`: the changes' IDs rise
//!    from there; then whether changes after it are lost (`gap_after`);
//! 4. the positions every feed saves, as text: each feed's `valid`.
//!
//! Budget (n = body length): one allocation ≤ 288·n + 16 KiB, held at once ≤ 864·n + 64 KiB,
//! the DynamoDB target's (a `GetRecords` record is read into structs of the same shape as an
//! item, for as little as `{},`). The other readers stay far below it: etcd's events are 96
//! bytes for 3 input bytes (the etcd target's 128·n / 256·n), a frame-coded change is 64
//! bytes for at least 10 input bytes.
#![no_main]

use kvplug_core::feed::{Feed, dynamodb, etcd, http, redis};
use kvplug_fuzz::budget::Budget;
use libfuzzer_sys::fuzz_target;

const BUDGET: Budget = Budget::new(288, 16 << 10, 864, 64 << 10);

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let n = body.len();
    let after = u64::from(selector / 5);
    match selector % 5 {
        0 => {
            if let Ok((changes, last)) = BUDGET.run(n, || http::read_page(body, after)) {
                assert!(last >= after, "{last} < {after}");
                assert!(changes.is_empty() || last > after, "{last} with changes");
            }
        }
        1 => {
            let space = if after % 2 == 0 { "" } else { "kv!b/" };
            let mut through = after;
            let mut changes = Vec::new();
            let read = BUDGET.run(n, || {
                etcd::read_message(body, space, &mut through, &mut changes)
            });
            assert!(through >= after, "{through} < {after}");
            drop(read);
        }
        2 => {
            let prefix = if after % 2 == 0 { "" } else { "a" };
            let read_after = if after < 25 { "" } else { "100" };
            if let Ok(page) = BUDGET.run(n, || {
                dynamodb::read_records(body, "!b", prefix, read_after)
            }) {
                assert!(page.changes.iter().all(|c| c.key.starts_with(prefix)));
                assert!(page.changes.len() <= page.records);
                assert_eq!(page.last.is_some(), page.records > 0);
            }
        }
        3 => {
            let position = redis::Id::parse(&format!("{after}-0")).unwrap_or(redis::Id::ZERO);
            if let Ok(read) = BUDGET.run(n, || redis::read_answer(body, position)) {
                let mut previous = position;
                for (id, _) in read.changes() {
                    assert!(id > previous, "{id:?} after {previous:?}");
                    previous = id;
                }
                drop(BUDGET.run(n, || read.gap_after(position)));
            }
        }
        _ => {
            if let Some(text) = kvplug_fuzz::text(body) {
                let _ = BUDGET.run(n, || {
                    (
                        http::RestFeed::valid(text),
                        etcd::EtcdFeed::valid(text),
                        dynamodb::DynamoFeed::valid(text),
                        redis::RedisFeed::valid(text),
                    )
                });
            }
        }
    }
});
