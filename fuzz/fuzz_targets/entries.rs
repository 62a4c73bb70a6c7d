//! The readers of the reference protocol's entry headers, which `kvplug-http` applies to
//! kvplug-server's answers (`kvplug_protocol::entries`: `parse_limit` of `kvplug-limit`,
//! `parse_ttl_range` of `kvplug-ttl-range`, `decode_metadata` of `kvplug-metadata`) and
//! `kvplug_core::backend::entries::generation_of` of an `ETag`.
//!
//! Input: UTF-8 text, given to each reader. Checks: what a reader accepts, written back
//! with its writer, reads the same again (one meaning per header); a generation is exactly
//! a quoted decimal `u64`; metadata written and read back is the same bytes.
//!
//! Budget: base64 decoding of metadata allocates its output (at most the input's length);
//! the other readers allocate nothing.
#![no_main]

use kvplug_core::backend::entries::generation_of;
use kvplug_fuzz::budget::{Budget, Linear};
use kvplug_protocol::entries;
use libfuzzer_sys::fuzz_target;

const METADATA: Budget = Budget {
    single: Linear {
        per_byte: 1,
        plus: 16,
    },
    live: Linear {
        per_byte: 1,
        plus: 16,
    },
};

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let n = text.len();

    if let Some((what, limit)) = Budget::NONE.run(n, || entries::parse_limit(text)) {
        let written = entries::format_limit(what, limit);
        assert_eq!(entries::parse_limit(&written), Some((what, limit)));
    }

    if let Some(range) = Budget::NONE.run(n, || entries::parse_ttl_range(text)) {
        let written = entries::format_ttl_range(range);
        assert_eq!(entries::parse_ttl_range(&written), Some(range));
    }

    match Budget::NONE.run(n, || generation_of(text)) {
        Some(generation) => {
            // Only a quoted decimal (with surrounding white space) is a generation.
            let inner = text.trim().strip_prefix('"').and_then(|t| t.strip_suffix('"'));
            assert_eq!(inner.and_then(|t| t.parse::<u64>().ok()), Some(generation));
            assert_eq!(generation_of(&format!("\"{generation}\"")), Some(generation));
        }
        None => assert!(
            !text.trim().starts_with('"')
                || text
                    .trim()
                    .strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|t| t.parse::<u64>().ok())
                    .is_none()
        ),
    }

    if let Ok(metadata) = METADATA.run(n, || entries::decode_metadata(text)) {
        let written = entries::encode_metadata(&metadata);
        assert_eq!(entries::decode_metadata(&written), Ok(metadata));
    }
    // Any bytes survive a round trip.
    assert_eq!(
        entries::decode_metadata(&entries::encode_metadata(data)),
        Ok(data.to_vec())
    );
});
