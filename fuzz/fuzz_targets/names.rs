//! `kvplug_protocol::names::decode`: bucket names, keys and cursors as URL path segments, as
//! kvplug-server's list answers carry cursors and the server reads them from request paths.
//! Feeds UTF-8 inputs as the segment. A segment that decodes must be exactly what `encode`
//! writes for the name, up to the case of the hex digits (the one spelling `decode` also
//! takes); and any input, taken as a name, must survive `encode` then `decode`.
//!
//! Budget (n = input length): one allocation ≤ n + 16, held at once ≤ n + 16 (the decoded
//! bytes are never longer than the segment).
#![no_main]

use kvplug_fuzz::budget::Budget;
use kvplug_protocol::names::{decode, encode};
use libfuzzer_sys::{Corpus, fuzz_target};

const BUDGET: Budget = Budget::new(1, 16, 1, 16);

/// Upper-cases the two hex digits after every `%`.
fn upper_escapes(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut upper = 0;
    for c in segment.chars() {
        if upper > 0 {
            out.push(c.to_ascii_uppercase());
            upper -= 1;
        } else {
            out.push(c);
            if c == '%' {
                upper = 2;
            }
        }
    }
    out
}

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| -> Corpus {
    let Some(segment) = kvplug_fuzz::text(data) else {
        return Corpus::Reject;
    };
    if let Ok(name) = BUDGET.run(segment.len(), || decode(segment)) {
        assert_eq!(encode(&name), upper_escapes(segment), "{name:?} has another spelling");
    }
    let encoded = encode(segment);
    let decoded = BUDGET.run(encoded.len(), || decode(&encoded));
    assert_eq!(decoded.as_deref(), Ok(segment), "encoded as {encoded:?}");
    Corpus::Keep
});
