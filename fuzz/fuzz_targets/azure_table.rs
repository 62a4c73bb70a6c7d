//! The Azure Table backend's answer readers (`kvplug_core::backend::azure_table`). Input: one
//! selector byte `s`, then the answer body. `s % 5` picks the reader:
//!
//! 0. `odata::read_entity`, `odata::read_entry` (a `GET` of one entity, with its metadata and
//!    deadline) and `odata::read_deadline` (one fetched with `$select=x`),
//! 1. `odata::read_query` (a page of a query), then each entity's `row_key`, `value`,
//!    `metadata` and `expires_ms`, and `keys::decode_key` of each row key,
//! 2. `errors::service_error` (any failed request's body) and its `reason`,
//! 3. `batch::batch_outcome` (an entity group transaction's multipart answer) for `s / 5`
//!    operations,
//! 4. `keys::decode_key` and `paths::valid_cursor` on the body as text.
//!
//! Checks, beyond "no panic": a row key that decodes is exactly the field `encode_key` writes
//! for that key (one key, one field).
//!
//! Budget (n = body length): one allocation ≤ 64·n + 16 KiB, held at once ≤ 128·n + 64 KiB.
//! serde reads each entity into an `EntityAnswer` (a row key and one slot per value part up
//! to the highest part named, 255 at most) and each decoded value is ≤ n; a `Vec` may double
//! past its length and is counted twice while it moves.
#![no_main]

use kvplug_core::backend::azure_table::{batch, errors, keys, odata, paths};
use kvplug_fuzz::budget::Budget;
use libfuzzer_sys::fuzz_target;

const BUDGET: Budget = Budget::new(64, 16 << 10, 128, 64 << 10);

fn check_key(field: &str) {
    if let Some(key) = BUDGET.run(field.len(), || keys::decode_key(field)) {
        assert_eq!(keys::encode_key(&key), field, "{key:?} has another field");
    }
}

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let n = body.len();
    match selector % 5 {
        0 => {
            let _ = BUDGET.run(n, || odata::read_entity(body));
            let _ = BUDGET.run(n, || odata::read_entry(body));
            let _ = BUDGET.run(n, || odata::read_deadline(body));
        }
        1 => {
            let rows = BUDGET.run(n, || {
                odata::read_query(body).map(|entities| {
                    entities
                        .iter()
                        .map(|entity| {
                            let _ = (entity.metadata(), entity.expires_ms());
                            (entity.row_key().map(String::from), entity.value())
                        })
                        .collect::<Vec<_>>()
                })
            });
            for (row_key, _) in rows.iter().flatten() {
                if let Ok(field) = row_key {
                    check_key(field);
                }
            }
        }
        2 => {
            if let Ok(error) = BUDGET.run(n, || errors::service_error(body)) {
                let _ = error.reason();
            }
        }
        3 => {
            let operations = usize::from(selector / 5);
            let _ = BUDGET.run(n, || batch::batch_outcome(body, operations));
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                check_key(text);
                let _ = BUDGET.run(n, || paths::valid_cursor(text));
            }
        }
    }
});
