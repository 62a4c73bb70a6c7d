//! `kvplug_settings::sealed::decode`: the settings `kvplug seal` wrote into a config
//! component's slot, read by `kvplug-config-static` at every lookup. Feeds the raw bytes (as the
//! slot's first `len` bytes). Checks that `encode` of what was decoded gives back exactly the
//! well-formed prefix decoding consumed, then hands the pairs to `Settings::from_lookup` the
//! way the sealed config answers (the first pair with the name), with the same "what sealing
//! accepts, the adapter accepts" check as the `settings` target.
//!
//! Budget (n = input length): one allocation ≤ 16·n + 1 KiB, held at once ≤ 24·n + 4 KiB.
//! Each pair is a 48-byte `(String, String)` for ≥ 8 input bytes (a `Vec` may double past
//! that and is counted twice while it moves); the strings are copies of the input.
#![no_main]

use kvplug_fuzz::budget::Budget;
use kvplug_settings::Settings;
use kvplug_settings::sealed::{self, CAPACITY};
use libfuzzer_sys::fuzz_target;

const BUDGET: Budget = Budget::new(16, 1 << 10, 24, 4 << 10);
const LOOKUP_BUDGET: Budget = Budget::new(24, 1 << 10, 48, 4 << 10);

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| {
    let n = data.len();
    let pairs = BUDGET.run(n, || sealed::decode(data));
    let encoded = sealed::encode(&pairs);
    let consumed = pairs.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>();
    if consumed <= CAPACITY {
        assert_eq!(encoded.as_deref(), Ok(&data[..consumed]), "not what was decoded");
    } else {
        assert!(encoded.is_err(), "more than the slot holds was encoded");
    }
    let settings = LOOKUP_BUDGET.run(n, || {
        Settings::from_lookup(|name| Ok(kvplug_fuzz::first(&pairs, name).map(String::from)))
    });
    if kvplug_fuzz::seal_accepts(&pairs) {
        assert!(settings.is_ok(), "sealing accepts {pairs:?}, the adapter refuses: {settings:?}");
    }
});
