//! What every fuzz target shares: the allocation budget ([`budget`]) and the panic hook that
//! goes with it ([`init`]), plus small helpers the targets' checks use.

pub mod budget;

/// Call from each target's `fuzz_target!(init: kvplug_fuzz::init(), …)`.
///
/// libfuzzer-sys installs a panic hook that prints the panic and aborts (so that libFuzzer
/// records the input as a crash). Printing a panic allocates (the message, a backtrace), which
/// would trip the allocation budget while it is armed and hide the panic's own message behind
/// "over budget": this wraps that hook so that a panic disarms the budget first.
pub fn init() {
    let abort_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        budget::disarm();
        abort_hook(info);
    }));
    budget::init_peak_report();
}

/// The input as text, if it is UTF-8 (the parsers that take `&str` are fed only such inputs;
/// an input that is not is rejected so that libFuzzer does not keep it in its corpus).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// `name=value` lines, as the `settings` targets read their input: the first `=` splits a
/// line, a line without one is a name with an empty value.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (line.to_owned(), String::new()),
        })
        .collect()
}

/// What `kvplug seal` accepts (`compose/src/seal.rs`, `check_settings`): every name known and
/// its value valid, no name twice, and a `url` (the plain, not `--runtime-config`, form).
pub fn seal_accepts(pairs: &[(String, String)]) -> bool {
    pairs.iter().enumerate().all(|(index, (name, value))| {
        kvplug_settings::validate(name, value).is_ok()
            && !pairs[..index].iter().any(|(n, _)| n == name)
    }) && pairs.iter().any(|(name, _)| name == "url")
}

/// How the sealed config component answers a lookup: the first pair with that name
/// (`config/static/src/lib.rs`).
pub fn first<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}
