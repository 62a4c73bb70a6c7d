use super::*;
use alloc::vec;

const NOW: u64 = 5_000;
const GENERATION: u64 = 7;

#[derive(Debug, Clone, Copy)]
enum State {
    Absent,
    Live,
    /// Its deadline is `NOW` itself: the deadline is already outside the entry's life.
    Expired,
}

#[derive(Debug, Clone, Copy)]
enum Generation {
    None,
    Match,
    Mismatch,
}

#[derive(Debug, PartialEq, Eq)]
enum Expected {
    Written(&'static [u8], &'static [u8], Option<u64>),
    Refused(Refusal),
}

use Expected::{Refused, Written};
use Generation as G;
use Mode::{Add, Append, Overwrite, Prepend};
use State::{Absent, Expired, Live as L};

const MISMATCH: Expected = Refused(Refusal::GenerationMismatch);
const ADD_WITH_GENERATION: Expected = Refused(Refusal::Invalid(
    "`add` writes only an absent key, so it cannot take a generation",
));
const NEW: Expected = Written(b"new", b"", None);

fn current(state: State) -> Option<Live<'static>> {
    let entry = |expires_ms| Live {
        value: b"old",
        metadata: b"m0",
        generation: GENERATION,
        expires_ms: Some(expires_ms),
    };
    match state {
        Absent => None,
        L => Some(entry(NOW + 1)),
        Expired => Some(entry(NOW)),
    }
}

fn limits() -> Limits {
    Limits::new(Some(8192), Some(16))
}

fn run(
    state: State,
    value: &'static [u8],
    options: &InsertOptions<'static>,
    limits: &Limits,
) -> Expected {
    match plan(current(state), value, options, limits, NOW) {
        Ok(plan) => {
            // The table names results as statics; leak the few bytes a test case makes.
            let value: &'static [u8] = alloc::boxed::Box::leak(plan.value.into_owned().into());
            Written(value, plan.metadata, plan.expires_ms)
        }
        Err(refusal) => Refused(refusal),
    }
}

#[test]
fn every_mode_state_and_generation() {
    #[rustfmt::skip]
    let table: &[(Mode, State, Generation, Expected)] = &[
        (Overwrite, Absent, G::None, NEW),
        (Overwrite, Absent, G::Match, MISMATCH),
        (Overwrite, Absent, G::Mismatch, MISMATCH),
        (Overwrite, L, G::None, NEW),
        (Overwrite, L, G::Match, NEW),
        (Overwrite, L, G::Mismatch, MISMATCH),
        (Overwrite, Expired, G::None, NEW),
        (Overwrite, Expired, G::Match, MISMATCH),
        (Overwrite, Expired, G::Mismatch, MISMATCH),
        (Add, Absent, G::None, NEW),
        (Add, Absent, G::Match, ADD_WITH_GENERATION),
        (Add, Absent, G::Mismatch, ADD_WITH_GENERATION),
        (Add, L, G::None, Refused(Refusal::KeyExists)),
        (Add, L, G::Match, ADD_WITH_GENERATION),
        (Add, L, G::Mismatch, ADD_WITH_GENERATION),
        (Add, Expired, G::None, NEW),
        (Add, Expired, G::Match, ADD_WITH_GENERATION),
        (Add, Expired, G::Mismatch, ADD_WITH_GENERATION),
        (Append, Absent, G::None, NEW),
        (Append, Absent, G::Match, MISMATCH),
        (Append, Absent, G::Mismatch, MISMATCH),
        (Append, L, G::None, Written(b"oldnew", b"m0", Some(NOW + 1))),
        (Append, L, G::Match, Written(b"oldnew", b"m0", Some(NOW + 1))),
        (Append, L, G::Mismatch, MISMATCH),
        (Append, Expired, G::None, NEW),
        (Append, Expired, G::Match, MISMATCH),
        (Append, Expired, G::Mismatch, MISMATCH),
        (Prepend, Absent, G::None, NEW),
        (Prepend, Absent, G::Match, MISMATCH),
        (Prepend, Absent, G::Mismatch, MISMATCH),
        (Prepend, L, G::None, Written(b"newold", b"m0", Some(NOW + 1))),
        (Prepend, L, G::Match, Written(b"newold", b"m0", Some(NOW + 1))),
        (Prepend, L, G::Mismatch, MISMATCH),
        (Prepend, Expired, G::None, NEW),
        (Prepend, Expired, G::Match, MISMATCH),
        (Prepend, Expired, G::Mismatch, MISMATCH),
    ];
    assert_eq!(table.len(), 4 * 3 * 3);
    for (mode, state, generation, expected) in table {
        let options = InsertOptions {
            if_generation_match: match generation {
                G::None => None,
                G::Match => Some(GENERATION),
                G::Mismatch => Some(GENERATION + 1),
            },
            ..InsertOptions::new(*mode)
        };
        assert_eq!(
            &run(*state, b"new", &options, &limits()),
            expected,
            "{mode:?} over {state:?} with generation {generation:?}"
        );
    }
}

#[test]
fn metadata_is_kept_set_or_cleared() {
    /// (mode, state, options' metadata, metadata written)
    type Case = (Mode, State, Option<&'static [u8]>, &'static [u8]);
    #[rustfmt::skip]
    let table: &[Case] = &[
        (Overwrite, L, None, b""),
        (Overwrite, L, Some(b"m1"), b"m1"),
        (Overwrite, L, Some(b""), b""),
        (Add, Absent, Some(b"m1"), b"m1"),
        (Add, Expired, None, b""),
        (Append, L, None, b"m0"),
        (Append, L, Some(b"m1"), b"m1"),
        (Append, L, Some(b""), b""),
        (Append, Expired, None, b""),
        (Prepend, L, None, b"m0"),
        (Prepend, L, Some(b"m1"), b"m1"),
        (Prepend, L, Some(b""), b""),
        (Prepend, Absent, Some(b"m1"), b"m1"),
    ];
    for (mode, state, metadata, written) in table {
        let options = InsertOptions {
            metadata: *metadata,
            ..InsertOptions::new(*mode)
        };
        let planned = plan(current(*state), b"x", &options, &limits(), NOW);
        assert_eq!(
            planned.map(|p| p.metadata),
            Ok(*written),
            "{mode:?} over {state:?} with {metadata:?}"
        );
    }
}

#[test]
fn expiry_is_kept_or_set() {
    // (mode, state, ttl, deadline written)
    #[rustfmt::skip]
    let table: &[(Mode, State, Option<u32>, Option<u64>)] = &[
        (Overwrite, L, None, None),
        (Overwrite, L, Some(3), Some(NOW + 3000)),
        (Add, Absent, Some(1), Some(NOW + 1000)),
        (Add, Expired, None, None),
        (Append, L, None, Some(NOW + 1)),
        (Append, L, Some(2), Some(NOW + 2000)),
        (Append, Absent, None, None),
        (Append, Expired, None, None),
        (Prepend, L, None, Some(NOW + 1)),
        (Prepend, L, Some(u32::MAX), Some(NOW + u64::from(u32::MAX) * 1000)),
        (Prepend, Expired, Some(5), Some(NOW + 5000)),
    ];
    for (mode, state, ttl, written) in table {
        let options = InsertOptions {
            ttl_sec: *ttl,
            ..InsertOptions::new(*mode)
        };
        let planned = plan(current(*state), b"x", &options, &limits(), NOW);
        assert_eq!(
            planned.map(|p| p.expires_ms),
            Ok(*written),
            "{mode:?} over {state:?} with ttl {ttl:?}"
        );
    }
}

#[test]
fn an_entry_without_a_deadline_never_expires() {
    let forever = Live {
        value: b"old",
        metadata: b"",
        generation: 1,
        expires_ms: None,
    };
    let planned = plan(
        Some(forever),
        b"+",
        &InsertOptions::new(Append),
        &limits(),
        u64::MAX,
    );
    assert_eq!(planned.map(|p| p.value.into_owned()), Ok(b"old+".to_vec()));
    assert!(!is_expired(None, u64::MAX));
    assert!(is_expired(Some(10), 10));
    assert!(!is_expired(Some(10), 9));
    assert_eq!(deadline(u64::MAX - 1, 1), u64::MAX);
}

#[test]
fn the_value_limit_counts_the_concatenation() {
    let too_large = |size| {
        Refused(Refusal::TooLarge {
            what: Limited::Value,
            limit: Some(16),
            size,
        })
    };
    let fits: &'static [u8] = &[b'a'; 13];
    let over: &'static [u8] = &[b'a'; 14];
    // The live value is 3 bytes and the limit 16.
    assert!(matches!(
        run(L, fits, &InsertOptions::new(Append), &limits()),
        Written(v, _, _) if v.len() == 16
    ));
    assert_eq!(
        run(L, over, &InsertOptions::new(Append), &limits()),
        too_large(17)
    );
    assert_eq!(
        run(L, over, &InsertOptions::new(Prepend), &limits()),
        too_large(17)
    );
    // An expired value is not concatenated, so it does not count.
    assert!(matches!(
        run(Expired, over, &InsertOptions::new(Append), &limits()),
        Written(v, _, _) if v.len() == 14
    ));
    // Overwrite counts only the new value.
    assert!(matches!(
        run(L, &[0; 16], &InsertOptions::new(Overwrite), &limits()),
        Written(v, _, _) if v.len() == 16
    ));
    assert_eq!(
        run(Absent, &[0; 17], &InsertOptions::new(Add), &limits()),
        too_large(17)
    );
    let unlimited = Limits::new(None, None);
    assert!(matches!(
        run(L, &[0; 100], &InsertOptions::new(Append), &unlimited),
        Written(v, _, _) if v.len() == 103
    ));
}

#[test]
fn check_refuses_before_any_io() {
    let limits = limits();
    let metadata = vec![0xA5; 2001];
    let refusals: &[(InsertOptions<'_>, usize, Refusal)] = &[
        (
            InsertOptions {
                if_generation_match: Some(1),
                ..InsertOptions::new(Add)
            },
            1,
            Refusal::Invalid("`add` writes only an absent key, so it cannot take a generation"),
        ),
        (
            InsertOptions {
                metadata: Some(&metadata),
                ..InsertOptions::new(Overwrite)
            },
            1,
            Refusal::TooLarge {
                what: Limited::Metadata,
                limit: Some(2000),
                size: 2001,
            },
        ),
        (
            InsertOptions {
                ttl_sec: Some(0),
                ..InsertOptions::new(Append)
            },
            1,
            Refusal::TtlOutOfRange(TTL_RANGE),
        ),
        (
            InsertOptions::new(Overwrite),
            8193,
            Refusal::TooLarge {
                what: Limited::Key,
                limit: Some(8192),
                size: 8193,
            },
        ),
    ];
    for (options, key_len, refusal) in refusals {
        assert_eq!(check(options, &limits, *key_len), Err(*refusal));
        // plan refuses the same options on its own (the key is not its business).
        if !matches!(
            refusal,
            Refusal::TooLarge {
                what: Limited::Key,
                ..
            }
        ) {
            assert_eq!(
                plan(current(Absent), b"v", options, &limits, NOW),
                Err(*refusal)
            );
        }
    }
    let fine = InsertOptions {
        ttl_sec: Some(u32::MAX),
        metadata: Some(&metadata[..2000]),
        if_generation_match: Some(3),
        mode: Prepend,
    };
    assert_eq!(check(&fine, &limits, 8192), Ok(()));
    // A store with a narrower range reports its own.
    let narrow = TtlRange {
        min_sec: 60,
        max_sec: 3600,
    };
    let cloudflare_like = Limits {
        ttl: narrow,
        ..limits
    };
    for ttl in [59, 3601] {
        let options = InsertOptions {
            ttl_sec: Some(ttl),
            ..InsertOptions::new(Overwrite)
        };
        assert_eq!(
            check(&options, &cloudflare_like, 1),
            Err(Refusal::TtlOutOfRange(narrow))
        );
    }
}

#[test]
fn wire_helpers_round_trip() {
    for mode in Mode::ALL {
        assert_eq!(Mode::from_query(mode.as_query()), Some(mode));
    }
    assert_eq!(Mode::from_query("Add"), None);
    assert_eq!(insert_query(Append, Some(5)), "mode=append&ttl=5");
    assert_eq!(insert_query(Add, None), "mode=add");
    assert_eq!(entry_path("b", "a/é"), "/v1/buckets/b/entries/a%2F%C3%A9");
    assert_eq!(entries_path(""), "/v1/buckets/~/entries");
    let metadata: Vec<u8> = (0..=255).collect();
    assert_eq!(decode_metadata(&encode_metadata(&metadata)), Ok(metadata));
    assert_eq!(decode_metadata(""), Ok(vec![]));
    assert!(matches!(decode_metadata("*"), Err(Refusal::Invalid(_))));
    assert_eq!(format_limit(Limited::Metadata, 2000), "metadata=2000");
    assert_eq!(
        parse_limit("value=67108864"),
        Some((Limited::Value, 64 << 20))
    );
    assert_eq!(parse_limit("size=1"), None);
    assert_eq!(format_ttl_range(TTL_RANGE), "1-4294967295");
    assert_eq!(parse_ttl_range("1-4294967295"), Some(TTL_RANGE));
    assert_eq!(parse_ttl_range("1"), None);
}
