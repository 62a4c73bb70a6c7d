//! The etcd backend's answer readers (`kvplug_core::backend::etcd`, etcd v3's JSON gateway).
//! Input: one selector byte `s`, then the answer body. `s % 2` picks the reader:
//!
//! 0. `read_answer` (`range`, `put`, `deleterange`, `txn`), then everything the backend asks
//!    of an answer: `first_value`, `versioned`, `counted`, `more`, `succeeded`, `keys` under
//!    the bucket space `""` or `kv!b/` (`s / 2 % 2`), and the entries extension's `entry`
//!    (a two-range transaction), `revision`, `lease_id`, `first_lease`, `first_deleted`;
//!    each of a transaction's `reads` likewise;
//! 1. `error_message` (any failed request's body).
//!
//! Budget (n = body length): one allocation ≤ 128·n + 16 KiB, held at once ≤ 256·n + 64 KiB.
//! serde reads each listed key into a `KeyValue` and each transaction response into an
//! `Answer` (a few optional fields and two lists) for as little as `{},` (3 bytes); a `Vec`
//! may double past its length and is counted twice while it moves; decoded values and keys
//! are ≤ n.
#![no_main]

use kvplug_core::backend::etcd::{self, Answer};
use kvplug_fuzz::budget::Budget;
use libfuzzer_sys::fuzz_target;

const BUDGET: Budget = Budget::new(128, 16 << 10, 256, 64 << 10);

fn ask(answer: &Answer<'_>, space: &str, n: usize) {
    let _ = BUDGET.run(n, || answer.first_value());
    let _ = BUDGET.run(n, || answer.versioned());
    let _ = (answer.counted(), answer.more(), answer.succeeded());
    let _ = BUDGET.run(n, || answer.keys(space));
    let _ = BUDGET.run(n, || answer.entry());
    let _ = (
        answer.revision(),
        answer.lease_id(),
        answer.first_lease(),
        answer.first_deleted(),
    );
}

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let n = body.len();
    if selector % 2 == 1 {
        let _ = BUDGET.run(n, || etcd::error_message(body));
        return;
    }
    let space = if selector / 2 % 2 == 0 { "" } else { "kv!b/" };
    if let Ok(answer) = BUDGET.run(n, || etcd::read_answer(body)) {
        ask(&answer, space, n);
        for read in answer.reads().flatten() {
            ask(read, space, n);
        }
    }
});
