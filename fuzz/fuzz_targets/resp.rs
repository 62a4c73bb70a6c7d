//! `kvplug_codec::resp`: a Redis RESP2 reply as webdis returns it (`.raw`), read by the Redis
//! backend. Feeds the raw bytes to `parse` and `parse_owned`, which must agree; a reply that
//! reads is written back in canonical form and must read back the same, and `parse_within`
//! must take it with exactly as many array elements as it has and refuse it with one fewer.
//!
//! Budget (n = input length): one allocation ≤ 32·n + 4 KiB, held at once ≤ 64·n + 1 MiB.
//! Bulk strings are copied (≤ n), a simple string may grow 3× (invalid UTF-8 becomes U+FFFD),
//! every element is a 32-byte `Reply` taking ≥ 3 input bytes (a `Vec` may double past that),
//! and each of the ≤ 32 arrays being read preallocates at most 1024 elements (32 KiB).
#![no_main]

use kvplug_codec::resp::{self, Reply};
use kvplug_fuzz::budget::Budget;
use libfuzzer_sys::fuzz_target;

const BUDGET: Budget = Budget::new(32, 4 << 10, 64, 1 << 20);

/// How many array elements the reply holds, nested ones included.
fn items(reply: &Reply) -> usize {
    match reply {
        Reply::Array(Some(elements)) => elements.len() + elements.iter().map(items).sum::<usize>(),
        _ => 0,
    }
}

fn write(reply: &Reply, out: &mut Vec<u8>) {
    match reply {
        Reply::Simple(text) => out.extend_from_slice(format!("+{text}\r\n").as_bytes()),
        Reply::Error(text) => out.extend_from_slice(format!("-{text}\r\n").as_bytes()),
        Reply::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
        Reply::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
        Reply::Bulk(Some(bytes)) => {
            out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
            out.extend_from_slice(bytes);
            out.extend_from_slice(b"\r\n");
        }
        Reply::Array(None) => out.extend_from_slice(b"*-1\r\n"),
        Reply::Array(Some(items)) => {
            out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
            for item in items {
                write(item, out);
            }
        }
    }
}

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let n = data.len();
    let borrowed = BUDGET.run(n, || resp::parse(data));
    let input = data.to_vec();
    let owned = BUDGET.run(n, || resp::parse_owned(input, usize::MAX));
    assert_eq!(borrowed, owned, "parse and parse_owned disagree");
    if let Ok(reply) = borrowed {
        let count = items(&reply);
        let within = BUDGET.run(n, || resp::parse_within(data, count));
        assert_eq!(within.as_ref(), Ok(&reply), "refused with exactly its {count} elements");
        if let Some(fewer) = count.checked_sub(1) {
            assert!(resp::parse_within(data, fewer).is_err(), "taken with {fewer} elements");
            let input = data.to_vec();
            assert!(resp::parse_owned(input, fewer).is_err(), "taken owned with {fewer}");
        }
        let mut canonical = Vec::new();
        write(&reply, &mut canonical);
        assert_eq!(resp::parse(&canonical), Ok(reply), "the canonical form reads differently");
    }
});
