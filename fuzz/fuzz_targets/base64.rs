//! `kvplug_codec::base64::decode`: binary values in etcd's and DynamoDB's answers (and the
//! Azure account key). Feeds UTF-8 inputs as text. Checks it against the `base64` crate
//! configured as the decoder documents itself (trailing bits ignored, padding optional):
//! same bytes where both accept, and the one known difference (the crate also takes partial
//! padding, `g0=`) as the only disagreement; and that what it decodes encodes back to a text
//! that decodes to the same bytes. `decode_in_place` (etcd's `get`) must agree with `decode`
//! on every input, and allocate nothing.
//!
//! Budget (n = input length): one allocation ≤ n + 16, held at once ≤ n + 16 (the output is
//! ¾ of the input).
#![no_main]

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use kvplug_codec::base64::{DecodeError, decode, decode_in_place, encode};
use kvplug_fuzz::budget::Budget;
use libfuzzer_sys::{Corpus, fuzz_target};

const BUDGET: Budget = Budget::new(1, 16, 1, 16);

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| -> Corpus {
    let Some(text) = kvplug_fuzz::text(data) else {
        return Corpus::Reject;
    };
    let ours = BUDGET.run(text.len(), || decode(text));
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let theirs = lenient.decode(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "different bytes"),
        (Err(_), Err(_)) => {}
        (Err(DecodeError::InvalidByte), Ok(_))
            if text.ends_with('=') && !text.len().is_multiple_of(4) => {}
        _ => panic!("ours {ours:?}, the base64 crate's {theirs:?}"),
    }
    let mut buf = text.as_bytes().to_vec();
    let in_place = Budget::NONE.run(buf.len(), || decode_in_place(&mut buf));
    match (&ours, in_place) {
        (Ok(a), Ok(n)) => assert_eq!(buf.get(..n), Some(a.as_slice()), "in place"),
        (Err(a), Err(b)) => assert_eq!(*a, b, "in place refuses differently"),
        (a, b) => panic!("decode {a:?}, in place {b:?}"),
    }
    if let Ok(bytes) = &ours {
        assert_eq!(decode(&encode(bytes)).as_ref(), Ok(bytes), "encode then decode");
    }
    Corpus::Keep
});
