//! The DynamoDB backend's answer readers (`kvplug_core::backend::dynamodb`). Input: one
//! selector byte `s`, then the answer body. `s % 8` picks the reader:
//!
//! 0. `errors::error_of` (any failed request's body),
//! 1. `items::read_item` (`GetItem`: value, `ver`, metadata `m`, expiry `e`),
//! 2. `items::read_exists` (`GetItem` projected on `k, e`) and `items::read_deleted`
//!    (`DeleteItem` with `ReturnValues: ALL_OLD`), on the same body,
//! 3. `items::read_query` (`Query`), 4. `items::read_sum` (`UpdateItem ADD`),
//! 5. `items::read_ack` (`PutItem`, `DeleteItem`),
//! 6. `batch::read_batch_get` (`BatchGetItem`: `Responses` and `UnprocessedKeys`),
//! 7. `batch::read_batch_write` (`BatchWriteItem`: `UnprocessedItems`);
//!
//! all but the first go through `json::read_answer`, the one struct every answer is read
//! into. Checks, beyond "no panic": an error's type is the part after the last `#`.
//!
//! Budget (n = body length): one allocation ≤ 288·n + 16 KiB, held at once ≤ 864·n + 64 KiB.
//! serde reads each item of a list into an `ItemAnswer` (six attributes of three optional
//! strings each: 432 bytes) for as little as `{},` (3 bytes), and a `Vec` may double past its
//! length: 2 × 432 / 3 = 288 bytes per input byte, reached by `{"Items":[{},…]}` with one item
//! past a power of two; while it moves it is counted with its old buffer (3×); decoded values
//! and keys are ≤ n. (Before entries added `m` and `e` it was 128·n and 384·n, which that
//! input already exceeded from about 5,000 items of 288 bytes.)

#![no_main]

use kvplug_core::backend::dynamodb::{batch, errors, items};
use kvplug_fuzz::budget::Budget;
use libfuzzer_sys::fuzz_target;

const BUDGET: Budget = Budget::new(288, 16 << 10, 864, 64 << 10);

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let n = body.len();
    match selector % 8 {
        0 => {
            if let Ok(error) = BUDGET.run(n, || errors::error_of(body)) {
                assert!(!error.kind.contains('#'), "a type with its namespace: {error:?}");
            }
        }
        1 => drop(BUDGET.run(n, || items::read_item(body))),
        2 => {
            drop(BUDGET.run(n, || items::read_exists(body)));
            drop(BUDGET.run(n, || items::read_deleted(body)));
        }
        3 => drop(BUDGET.run(n, || items::read_query(body))),
        4 => drop(BUDGET.run(n, || items::read_sum(body))),
        5 => drop(BUDGET.run(n, || items::read_ack(body))),
        6 => drop(BUDGET.run(n, || batch::read_batch_get(body))),
        _ => drop(BUDGET.run(n, || batch::read_batch_write(body))),
    }
});
