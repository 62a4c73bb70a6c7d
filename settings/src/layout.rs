//! Where a bucket lives in a store that several configurations share: the `prefix` setting,
//! then [`MARKER`], then the encoded bucket name, then (for key-range stores) a delimiter.
//!
//! Joining prefix and bucket directly lets one configuration name another's keys (prefix
//! `app1` with bucket `x` and prefix `app` with bucket `1x` both give `app1x`). With the
//! marker, no namespace is a prefix of another (README, "Prefixes"): where two prefixes
//! differ, the namespaces differ; where one prefix continues the other, the shorter one's
//! namespace has the marker at a position where the longer one has a prefix character, which
//! is never the marker; where the prefixes are equal, the encoded buckets hold neither the
//! marker nor the delimiter and the encoding is injective. The prefix itself stays literal,
//! so a service's access rules written for it (etcd roles, Redis ACL key patterns) hold.

use alloc::string::String;
use core::fmt;

/// Ends the prefix in every namespace. A `prefix` may not contain it and no bucket encoding
/// produces it. `!` is printable ASCII, allowed in the keys of every backend's service, not
/// a Redis glob character, and outside every bucket encoding's output.
pub const MARKER: char = '!';

/// Why a namespace cannot be formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// The prefix contains [`MARKER`]; settings validation refuses such a prefix.
    MarkerInPrefix,
    /// The bucket encoding produced this character, which would let a bucket pass for
    /// another's continuation: a fault of the encoder, never of the bucket name.
    Reserved(char),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::MarkerInPrefix => f.write_str(&prefix_message()),
            LayoutError::Reserved(c) => write!(
                f,
                "the encoded bucket name holds {c:?}, which kvplug reserves to separate names"
            ),
        }
    }
}

fn prefix_message() -> String {
    alloc::format!(
        "`prefix` may not contain `{MARKER}`: kvplug writes `{MARKER}` after the prefix so that no prefix can pass for the start of another"
    )
}

/// Refuses a `prefix` that holds [`MARKER`], naming the setting and the character.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.contains(MARKER) {
        Err(prefix_message())
    } else {
        Ok(())
    }
}

/// `prefix` + [`MARKER`] + `encode(bucket)` + `delimiter`: the start of every stored key of
/// the bucket (key-range stores, with their delimiter) or its whole partition key (stores
/// whose partitions match exactly, with `None`).
///
/// `encode` must be injective and never write [`MARKER`] or `delimiter`; what it writes is
/// checked for both, so a faulty encoder is an error rather than an overlap.
pub fn namespace(
    prefix: &str,
    bucket: &str,
    encode: impl FnOnce(&str) -> String,
    delimiter: Option<char>,
) -> Result<String, LayoutError> {
    if prefix.contains(MARKER) {
        return Err(LayoutError::MarkerInPrefix);
    }
    let encoded = encode(bucket);
    let reserved = encoded
        .chars()
        .find(|&c| c == MARKER || Some(c) == delimiter);
    if let Some(c) = reserved {
        return Err(LayoutError::Reserved(c));
    }
    let mut out = String::with_capacity(prefix.len() + encoded.len() + 2);
    out.push_str(prefix);
    out.push(MARKER);
    out.push_str(&encoded);
    if let Some(delimiter) = delimiter {
        out.push(delimiter);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::vec::Vec;

    use kvplug_protocol::names::encode as percent;

    /// Azure Table's escaping of key fields (`core/src/backend/azure_table.rs`, which a
    /// test here cannot link): `/ \ # ? % ' ~`, control characters and the marker (escaped
    /// in bucket names; a prefix never holds it) as `~XX`.
    fn tilde_chars(name: &str) -> String {
        let mut out = String::new();
        for c in name.chars() {
            if matches!(c, '/' | '\\' | '#' | '?' | '%' | '\'' | '~' | MARKER) || c.is_control() {
                out.push_str(&format!("~{:02X}", u32::from(c)));
            } else {
                out.push(c);
            }
        }
        out
    }

    /// Azure Table's bucket encoding: the empty name is a lone `~`.
    fn tilde(name: &str) -> String {
        if name.is_empty() {
            String::from("~")
        } else {
            tilde_chars(name)
        }
    }

    fn literal(prefix: &str) -> String {
        String::from(prefix)
    }

    /// SplitMix64: a fixed seed makes every run test the same cases.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    /// Pieces that make the overlaps: delimiters, escape characters, the marker, the
    /// encodings' own spellings, and names that continue one another.
    const PIECES: &[&str] = &[
        "",
        "a",
        "b",
        "1",
        "x",
        "/",
        ":",
        "!",
        "%",
        "~",
        "%21",
        "~21",
        "%2F",
        "~2F",
        "%3A",
        "app",
        "app1",
        "1x",
        "apps",
        "guestbook",
        "notes",
        "k",
        "é",
        "\0",
        "*",
        "-",
        "_",
    ];

    /// Prefixes nest (`a`, `a/`, `a/b/`, `app`, `app1`) and one is empty.
    const PREFIXES: &[&str] = &[
        "",
        "a",
        "a/",
        "a/b",
        "a/b/",
        "app",
        "app1",
        "app:",
        "apps/",
        "apps/guestbook/",
        "apps:",
        "apps:guestbook:",
        ":",
        "/",
        "~",
        "%",
        "%2F",
        "x~",
        "é",
    ];

    fn name(rng: &mut Rng, from: &[&str]) -> String {
        let mut out = String::new();
        for _ in 0..rng.below(4) {
            out.push_str(rng.pick(from));
        }
        out
    }

    /// A (prefix, bucket): listed pieces, or made from an earlier pair so that the joined
    /// layout would confuse them: its prefix and bucket split elsewhere, continued with a
    /// delimiter into a longer prefix, or its prefix cut short.
    fn pair(rng: &mut Rng, earlier: &[(String, String)]) -> (String, String) {
        let (mut prefix, bucket) = match (rng.below(5), earlier.is_empty()) {
            (0, false) => {
                let (p, b) = &earlier[rng.below(earlier.len())];
                let joined: Vec<char> = p.chars().chain(b.chars()).collect();
                let (p, b) = joined.split_at(rng.below(joined.len() + 1));
                (p.iter().collect(), b.iter().collect())
            }
            (1, false) => {
                let (p, b) = &earlier[rng.below(earlier.len())];
                let delimiter = rng.pick(&["", "/", ":"]);
                (format!("{p}{b}{delimiter}"), name(rng, PIECES))
            }
            (2, false) => {
                let (p, _) = &earlier[rng.below(earlier.len())];
                let keep = rng.below(p.chars().count() + 1);
                (p.chars().take(keep).collect(), name(rng, PIECES))
            }
            _ => (String::from(rng.pick(PREFIXES)), name(rng, PIECES)),
        };
        if rng.below(4) == 0 {
            prefix.push_str(&name(rng, PIECES));
        }
        (prefix.replace(MARKER, ""), bucket)
    }

    type Encoder = fn(&str) -> String;

    /// How each backend forms its namespaces: what its service gets for the prefix (Azure
    /// escapes the characters its key fields refuse), its bucket encoding, its delimiter
    /// (`None` where partitions match exactly).
    const LAYOUTS: [(&str, Encoder, Encoder, Option<char>); 4] = [
        ("etcd", literal, percent, Some('/')),
        ("redis", literal, percent, Some(':')),
        ("dynamodb", literal, percent, None),
        ("azure-table", tilde_chars, tilde, None),
    ];

    /// Distinct (prefix, bucket) pairs: no equal namespaces, so no shared stored key (a
    /// partition store keys by namespace and key); for key-range stores, also no namespace
    /// that starts another, so no listing of one bucket reaches into another.
    #[test]
    fn distinct_prefix_and_bucket_never_share_a_stored_key() {
        let mut rng = Rng(0x6b76_706c_7567);
        let mut reached = Vec::new();
        for (store, prefixed, encode, delimiter) in LAYOUTS {
            let mut pairs: Vec<(String, String)> = Vec::new();
            while pairs.len() < 500 {
                let pair = pair(&mut rng, &pairs);
                if !pairs.contains(&pair) {
                    pairs.push(pair);
                }
            }
            let cases: Vec<(&String, &String, String, String)> = pairs
                .iter()
                .map(|(prefix, bucket)| {
                    let key = name(&mut rng, PIECES);
                    let space = namespace(&prefixed(prefix), bucket, encode, delimiter).unwrap();
                    (prefix, bucket, key, space)
                })
                .collect();
            // The joined layout this replaces, to show the cases reach the overlaps.
            let joined = |p: &str, b: &str| {
                let mut out = prefixed(p) + &encode(b);
                out.extend(delimiter);
                out
            };
            let mut old_overlaps = 0;
            for (i, (p1, b1, k1, s1)) in cases.iter().enumerate() {
                for (p2, b2, k2, s2) in cases.iter().skip(i + 1) {
                    let context = format!("{store}: ({p1:?}, {b1:?}) and ({p2:?}, {b2:?})");
                    assert_ne!(s1, s2, "{context}");
                    let (old1, old2) = (joined(p1, b1), joined(p2, b2));
                    if delimiter.is_some() {
                        assert!(
                            !s2.starts_with(s1.as_str()),
                            "{context}: {s1:?} starts {s2:?}"
                        );
                        assert!(
                            !s1.starts_with(s2.as_str()),
                            "{context}: {s2:?} starts {s1:?}"
                        );
                        assert_ne!(format!("{s1}{k1}"), format!("{s2}{k2}"), "{context}");
                        if old2.starts_with(&old1) || old1.starts_with(&old2) {
                            old_overlaps += 1;
                        }
                    } else if old1 == old2 {
                        old_overlaps += 1;
                    }
                }
            }
            reached.push((store, old_overlaps));
        }
        assert!(
            reached.iter().all(|&(_, n)| n >= 10),
            "pairs the joined layout confused: {reached:?}"
        );
    }

    #[test]
    fn the_reported_overlaps_are_gone() {
        let etcd = |p: &str, b: &str, k: &str| {
            format!("{}{k}", namespace(p, b, percent, Some('/')).unwrap())
        };
        assert_eq!(
            etcd("apps/guestbook/", "notes", "k"),
            "apps/guestbook/!notes/k"
        );
        assert_eq!(
            etcd("", "apps", "guestbook/notes/k"),
            "!apps/guestbook/notes/k"
        );
        let redis = |p: &str, b: &str, k: &str| {
            format!("{}{k}", namespace(p, b, percent, Some(':')).unwrap())
        };
        assert_ne!(
            redis("apps:guestbook:", "notes", "k"),
            redis("apps:", "guestbook", "notes:k")
        );
        let dynamo = |p: &str, b: &str| namespace(p, b, percent, None).unwrap();
        assert_eq!(dynamo("app1", "x"), "app1!x");
        assert_eq!(dynamo("app", "1x"), "app!1x");
        assert_eq!(dynamo("", ""), "!~");
        let azure = |p: &str, b: &str| namespace(&tilde_chars(p), b, tilde, None).unwrap();
        assert_eq!(
            azure("apps/guestbook/", "notes"),
            "apps~2Fguestbook~2F!notes"
        );
        assert_eq!(
            azure("", "apps/guestbook/notes"),
            "!apps~2Fguestbook~2Fnotes"
        );
        assert_eq!(azure("a", ""), "a!~");
        assert_eq!(azure("", "a!b"), "!a~21b");
    }

    #[test]
    fn refuses_the_marker_in_a_prefix_and_reserved_output() {
        assert_eq!(
            namespace("a!", "b", percent, Some('/')),
            Err(LayoutError::MarkerInPrefix)
        );
        let message = check_prefix("apps!").unwrap_err();
        assert!(
            message.contains("`prefix`") && message.contains("`!`"),
            "{message}"
        );
        assert_eq!(check_prefix("apps/one/"), Ok(()));
        let raw = |b: &str| String::from(b);
        assert_eq!(
            namespace("", "a/b", raw, Some('/')),
            Err(LayoutError::Reserved('/'))
        );
        assert_eq!(
            namespace("", "a!b", raw, None),
            Err(LayoutError::Reserved('!'))
        );
    }
}
