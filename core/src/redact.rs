//! Keeps credentials out of the text a service sends back, before any of it reaches an
//! error message (and so the app's logs).
//!
//! A careless or hostile service may echo a credential in another form than it was sent: the
//! HTTP Basic header's base64, a URL-encoded query, a JSON string with `\/`. Each secret is
//! therefore searched for in every form such a service could plausibly produce. A form that
//! is cut off at the end of what the service sent (the adapter reads only the start of an
//! error body) is redacted too, from four characters on.
//!
//! A secret shorter than [`MIN_SCRUBBABLE`] bytes is too likely to occur by chance, and its
//! encodings too many to list: with one configured, service text is withheld altogether
//! rather than quoted with holes that could still hint at it.

use alloc::string::String;
use alloc::vec::Vec;

use kvplug_codec::base64;

/// The shortest secret whose forms are searched for; see the module documentation.
pub const MIN_SCRUBBABLE: usize = 8;

/// Longest line an error keeps of a service's text.
const MAX_CHARS: usize = 160;

const REDACTED: &str = "<redacted>";

/// What replaces service text when a secret is too short to scrub reliably.
pub const WITHHELD: &str =
    "(the service's text is withheld: a configured credential is shorter than 8 characters)";

/// Every form of every secret, longest first, so that a longer form is never left half
/// redacted by a shorter one it contains.
#[derive(Clone, Default)]
pub struct Redactor {
    forms: Vec<String>,
    withhold: bool,
}

// Hand-written: the forms are the secrets.
impl core::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Redactor")
            .field("forms", &self.forms.len())
            .field("withhold", &self.withhold)
            .finish()
    }
}

impl Redactor {
    /// A redactor for `secrets` (empty ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut redactor = Redactor::default();
        for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SCRUBBABLE {
                redactor.withhold = true;
            }
            for form in forms_of(secret) {
                if form.is_empty() || redactor.forms.contains(&form) {
                    continue;
                }
                // Kept in order as they come: a handful of forms, and a library sort would
                // cost the artifact kilobytes.
                let at = redactor
                    .forms
                    .iter()
                    .position(|kept| kept.len() < form.len())
                    .unwrap_or(redactor.forms.len());
                redactor.forms.insert(at, form);
            }
        }
        redactor
    }

    /// `text` as one short line with every form of every secret replaced.
    pub fn scrub(&self, text: &str) -> String {
        if self.withhold && !text.trim().is_empty() {
            return String::from(WITHHELD);
        }
        let mut out = String::new();
        let mut kept = 0;
        let mut rest = text;
        while kept < MAX_CHARS {
            let Some(c) = rest.chars().next() else { break };
            if let Some(form) = self.forms.iter().find(|f| rest.starts_with(f.as_str())) {
                out.push_str(REDACTED);
                kept += REDACTED.len();
                rest = rest.get(form.len()..).unwrap_or_default();
                continue;
            }
            // The text ends inside a secret: what is there is a secret's start. Three
            // characters or fewer are let through: they reveal nothing of a secret of eight
            // or more, and any text's last letter would otherwise often look like one.
            if rest.len() > 3
                && self
                    .forms
                    .iter()
                    .any(|f| f.len() > rest.len() && f.starts_with(rest))
            {
                out.push_str(REDACTED);
                break;
            }
            out.push(if c.is_control() { ' ' } else { c });
            kept += 1;
            rest = rest.get(c.len_utf8()..).unwrap_or_default();
        }
        String::from(out.trim())
    }
}

/// The forms in which a service could echo `secret`: as sent, base64 (standard and URL-safe
/// alphabets, with and without padding), percent-encoded (upper- and lower-case hex, every
/// byte outside RFC 3986's unreserved set), and JSON-escaped (`\/`, `\"`, `\\`, `\uXXXX`).
fn forms_of(secret: &str) -> Vec<String> {
    let mut forms = Vec::with_capacity(8);
    forms.push(String::from(secret));
    let padded = base64::encode(secret.as_bytes());
    let unpadded = String::from(padded.trim_end_matches('='));
    let url_safe: String = padded
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    forms.push(String::from(url_safe.trim_end_matches('=')));
    forms.push(url_safe);
    forms.push(padded);
    forms.push(unpadded);
    forms.push(percent_encoded(secret, b"0123456789ABCDEF"));
    forms.push(percent_encoded(secret, b"0123456789abcdef"));
    forms.push(json_escaped(secret));
    forms
}

fn percent_encoded(secret: &str, hex: &[u8; 16]) -> String {
    let mut out = String::with_capacity(secret.len() * 3);
    for &byte in secret.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            for nibble in [byte >> 4, byte & 0xF] {
                if let Some(&digit) = hex.get(usize::from(nibble)) {
                    out.push(char::from(digit));
                }
            }
        }
    }
    out
}

fn json_escaped(secret: &str) -> String {
    let mut out = String::with_capacity(secret.len() + 8);
    for c in secret.chars() {
        match c {
            '/' => out.push_str("\\/"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            // Control characters are below U+0080 or in U+0080–U+009F: four hex digits.
            c if c.is_control() => {
                out.push_str("\\u00");
                for nibble in [(c as u32 >> 4) & 0xF, c as u32 & 0xF] {
                    out.push(char::from_digit(nibble, 16).unwrap_or('0'));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "app:p4ss/w+rd=\"x\\";

    fn redactor() -> Redactor {
        Redactor::new([SECRET])
    }

    #[test]
    fn every_form_is_redacted() {
        let r = redactor();
        let forms = forms_of(SECRET);
        assert!(forms.contains(&String::from("YXBwOnA0c3MvdytyZD0ieFw=")));
        assert!(forms.contains(&String::from("YXBwOnA0c3MvdytyZD0ieFw")));
        assert!(forms.contains(&String::from("app%3Ap4ss%2Fw%2Brd%3D%22x%5C")));
        assert!(forms.contains(&String::from("app%3ap4ss%2fw%2brd%3d%22x%5c")));
        assert!(forms.contains(&String::from("app:p4ss\\/w+rd=\\\"x\\\\")));
        for form in &forms {
            let text = alloc::format!("denied: {form} (sent)");
            assert_eq!(r.scrub(&text), "denied: <redacted> (sent)", "{form}");
        }
    }

    #[test]
    fn control_characters_are_json_escaped_and_forms_come_longest_first() {
        assert_eq!(json_escaped("a\tb\u{1f}"), "a\\u0009b\\u001f");
        let r = Redactor::new(["short-secret", "a-much-longer-secret-value"]);
        assert!(r.forms.windows(2).all(|w| w[0].len() >= w[1].len()));
    }

    #[test]
    fn a_secret_cut_off_at_the_end_is_redacted() {
        let r = redactor();
        let padded = base64::encode(SECRET.as_bytes());
        let cut = padded.get(..10).unwrap();
        assert_eq!(r.scrub(&alloc::format!("echo {cut}")), "echo <redacted>");
        // A long text is cut to one line, never in the middle of a secret.
        let long = alloc::format!("{}{SECRET}", "x".repeat(155));
        let scrubbed = r.scrub(&long);
        assert!(scrubbed.ends_with("<redacted>"), "{scrubbed}");
        assert!(!scrubbed.contains("app:"));
    }

    #[test]
    fn many_secrets_never_pull_a_later_one_into_the_line() {
        // Each redaction is shorter than the secret it replaces: the cut must still not
        // reveal a secret that started beyond the kept part.
        let long_secret = "k".repeat(300);
        let r = Redactor::new([long_secret.as_str()]);
        let text = alloc::format!("{long_secret}{long_secret}{}", &long_secret[..200]);
        assert_eq!(r.scrub(&text), "<redacted><redacted><redacted>");
    }

    #[test]
    fn short_secrets_withhold_the_text() {
        let r = Redactor::new(["abc", "long-enough-secret"]);
        assert_eq!(r.scrub("anything at all"), WITHHELD);
        assert_eq!(r.scrub("  "), "");
        let r = Redactor::new(["long-enough-secret"]);
        assert_eq!(r.scrub("plain text\r\nnext"), "plain text  next");
    }
}
