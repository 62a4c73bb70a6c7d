//! `kvplug_settings`: the adapter's settings as a runtime's `wasi:config` gives them. Input:
//! `name=value` lines (a runtime's config-var list). Feeds them to `Settings::from_lookup`
//! (the lookup answers the first line with the name, as the sealed config does), every line to
//! `validate` (what `kvplug seal` runs), and every value to `url::parse`.
//!
//! Checks, beyond "no panic": what `kvplug seal` accepts (every name known, every value valid,
//! no name twice, a `url`), the adapter accepts too (README: "a value `kvplug seal` accepts is
//! exactly a value the adapter accepts"); a parsed endpoint's authority and base path come
//! from the URL; an accepted `buckets` list has no empty name; and the settings' `Debug` form
//! does not depend on the secrets.
//!
//! Budget (n = input length): one allocation ≤ 2·n + 1 KiB, held at once ≤ 8·n + 4 KiB (the
//! settings are copies of parts of the input, the bucket list a `Vec` of 24-byte `String`s for
//! ≥ 2 input bytes each, and the error messages short).
#![no_main]

use kvplug_fuzz::budget::Budget;
use kvplug_settings::{Settings, url, validate};
use libfuzzer_sys::{Corpus, fuzz_target};

const BUDGET: Budget = Budget::new(24, 1 << 10, 48, 4 << 10);

fuzz_target!(init: kvplug_fuzz::init(), |data: &[u8]| -> Corpus {
    let Some(text) = kvplug_fuzz::text(data) else {
        return Corpus::Reject;
    };
    let pairs = kvplug_fuzz::pairs(text);
    let n = text.len();
    let settings = BUDGET.run(n, || {
        Settings::from_lookup(|name| Ok(kvplug_fuzz::first(&pairs, name).map(String::from)))
    });
    for (name, value) in &pairs {
        let _ = BUDGET.run(n, || validate(name, value));
        let _ = BUDGET.run(n, || url::parse(value));
    }
    check(&pairs, &settings);
    Corpus::Keep
});

fn check(pairs: &[(String, String)], settings: &Result<Settings, String>) {
    if kvplug_fuzz::seal_accepts(pairs) {
        assert!(
            settings.is_ok(),
            "sealing accepts {pairs:?}, the adapter refuses: {settings:?}"
        );
    }
    let Ok(settings) = settings else {
        return;
    };
    let url = kvplug_fuzz::first(pairs, "url").expect("no url, yet parsed");
    assert!(url.contains(settings.endpoint.authority.as_str()));
    assert!(url.contains(settings.endpoint.base_path.as_str()));
    assert!(!settings.endpoint.authority.is_empty());
    assert!(!settings.endpoint.base_path.ends_with('/'));
    if let Some(buckets) = &settings.buckets {
        assert!(buckets.iter().all(|b| !b.is_empty() && b.trim() == b));
    }
    // The `Debug` form must not depend on the secrets: the same with every secret replaced.
    let mut other = settings.clone();
    for secret in [
        &mut other.token,
        &mut other.secret_access_key,
        &mut other.session_token,
        &mut other.account_key,
    ] {
        if let Some(value) = secret {
            *value = format!("{value}-other");
        }
    }
    assert_eq!(
        format!("{settings:?}"),
        format!("{other:?}"),
        "a secret shows in Debug"
    );
}
