//! The JSON reader and writer, against `serde_json` and on their own.

use kvplug_codec::json::{MAX_DEPTH, Value, parse, parse_bytes, write_str};
use serde_json::Value as J;

mod common;
use common::Rng;

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn string(&mut self) -> String {
        const PICKS: &[char] = &[
            'a',
            'Z',
            '0',
            ' ',
            '"',
            '\\',
            '/',
            '\n',
            '\r',
            '\t',
            '\u{0}',
            '\u{1f}',
            '\u{7f}',
            '\u{8}',
            '\u{c}',
            'é',
            'ß',
            '中',
            '\u{2028}',
            '\u{ffff}',
            '😀',
            '\u{10ffff}',
        ];
        let len = self.below(12);
        (0..len).map(|_| PICKS[self.below(PICKS.len())]).collect()
    }

    fn value(&mut self, depth: usize) -> J {
        let kinds = if depth > 5 { 5 } else { 7 };
        match self.below(kinds) {
            0 => J::Null,
            1 => J::Bool(self.next().is_multiple_of(2)),
            2 => match self.below(3) {
                0 => J::from(self.next() as i64),
                1 => J::from(self.next()),
                _ => J::from(
                    f64::from_bits(self.next() >> 2)
                        * if self.next().is_multiple_of(2) {
                            1.0
                        } else {
                            -1.0
                        },
                ),
            },
            3 => J::from(self.below(2000) as i64 - 1000),
            4 => J::String(self.string()),
            5 => J::Array((0..self.below(5)).map(|_| self.value(depth + 1)).collect()),
            _ => J::Object(
                (0..self.below(5))
                    .map(|_| (self.string(), self.value(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// Structural equality; for duplicate keys the last one counts, as in `serde_json`.
fn same(ours: &Value<'_>, theirs: &J) -> bool {
    match (ours, theirs) {
        (Value::Null, J::Null) => true,
        (Value::Bool(a), J::Bool(b)) => a == b,
        (Value::Number(a), J::Number(b)) => {
            if let Some(b) = b.as_i64() {
                a.parse::<i64>() == Ok(b)
            } else if let Some(b) = b.as_u64() {
                a.parse::<u64>() == Ok(b)
            } else {
                // serde_json's default float parser may be an ulp off on long mantissas.
                match (a.parse::<f64>(), b.as_f64()) {
                    (Ok(a), Some(b)) => a == b || a.to_bits().abs_diff(b.to_bits()) <= 1,
                    _ => false,
                }
            }
        }
        (Value::String(a), J::String(b)) => a.as_str() == b,
        (Value::Array(a), J::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), J::Object(b)) => {
            let mut keys: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
            keys.sort_unstable();
            keys.dedup();
            keys.len() == b.len()
                && b.iter().all(|(k, v)| {
                    a.iter()
                        .rev()
                        .find(|(ak, _)| ak.as_str() == k)
                        .is_some_and(|(_, av)| same(av, v))
                })
        }
        _ => false,
    }
}

/// Rewrites every non-ASCII character of serialized JSON as `\u` escapes (pairs beyond the BMP).
fn escape_non_ascii(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04X}"));
            }
        }
    }
    out
}

fn check_against_serde(text: &str) {
    let ours = parse(text);
    let theirs = serde_json::from_str::<J>(text);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "{text:?}: {a:?} vs {b:?}"),
        (Err(_), Err(_)) => {}
        // We keep numbers as text; serde_json turns ones beyond f64 into an error.
        (Ok(_), Err(e)) if e.to_string().contains("number out of range") => {}
        _ => panic!("{text:?}: ours {ours:?}, theirs {theirs:?}"),
    }
}

const DOCUMENTS: &[&str] = &[
    "null",
    " true ",
    "false",
    "0",
    "-0",
    "-0.0",
    "123",
    "-9223372036854775808",
    "18446744073709551615",
    "123456789012345678901234567890",
    "1.5e300",
    "1E-7",
    "2.5E+3",
    "0.1",
    "\"\"",
    "\"plain\"",
    r#""\"\\\/\b\f\n\r\t""#,
    r#""\u0041\u00e9\u4E2D\ud83d\ude00""#,
    "[]",
    "{}",
    " [ 1 , [ 2 , [ 3 ] ] , { } ] ",
    "\t\r\n{\"a\"\t:\n1}\r\n",
    r#"{"kvs":[{"key":"Zm9v","value":"YmFy","mod_revision":"7","version":"1"}],"count":"1"}"#,
    r#"{"Item":{"k":{"S":"x"},"v":{"B":"AAEC"},"n":{"N":"-12.5"}}}"#,
    r#"{"a":1,"a":2}"#,
    r#"{"":[null,true,false,"é"]}"#,
    // Invalid from here on.
    "",
    " ",
    "nul",
    "nulll",
    "True",
    "01",
    "-",
    "+1",
    "1.",
    ".5",
    "1e",
    "1e+",
    "0x10",
    "NaN",
    "Infinity",
    "[1,]",
    "[,1]",
    "[1 2]",
    "{\"a\":1,}",
    "{\"a\" 1}",
    "{a:1}",
    "{\"a\":}",
    "{1:2}",
    "[",
    "]",
    "{",
    "\"abc",
    "\"a\nb\"",
    "\"tab\there\"",
    r#""\x""#,
    r#""\u12""#,
    r#""\u12G4""#,
    r#""\ud83d""#,
    r#""\ude00""#,
    r#""\ud83d\u0041""#,
    r#""\ud83dx""#,
    r#""\ud83d\n""#,
    "'single'",
    "1 2",
    "{} x",
    "[]]",
    "nullx",
    "\u{feff}1",
];

#[test]
fn agrees_with_serde_json_on_documents() {
    for text in DOCUMENTS {
        check_against_serde(text);
    }
}

#[test]
fn agrees_with_serde_json_on_random_documents() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    for _ in 0..3000 {
        let value = rng.value(0);
        let compact = serde_json::to_string(&value).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        for text in [&compact, &pretty, &escape_non_ascii(&compact)] {
            let ours = parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert!(same(&ours, &value), "{text:?}");
        }
    }
}

#[test]
fn agrees_with_serde_json_on_mutated_documents() {
    const INSERTS: &[char] = &[
        '[', ']', '{', '}', ',', ':', '"', '\\', 'u', 'd', '8', '0', 'e', '-', '.', ' ', 'n', '\n',
    ];
    let mut rng = Rng(99);
    for _ in 0..20_000 {
        let value = rng.value(0);
        let mut text: Vec<char> = escape_non_ascii(&serde_json::to_string(&value).unwrap())
            .chars()
            .collect();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(text.len() + 1);
            match rng.below(3) {
                0 if at < text.len() => {
                    text.remove(at);
                }
                1 if at < text.len() => text[at] = INSERTS[rng.below(INSERTS.len())],
                _ => text.insert(at, INSERTS[rng.below(INSERTS.len())]),
            }
        }
        check_against_serde(&text.into_iter().collect::<String>());
    }
}

#[test]
fn decodes_escapes_and_borrows_plain_strings() {
    let v =
        parse(r#"["plain", "a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00e9\u4e2d\uD83D\uDE00"]"#).unwrap();
    let items = v.as_array().unwrap();
    let Value::String(plain) = &items[0] else {
        panic!()
    };
    assert!(plain.is_borrowed());
    assert_eq!(plain, "plain");
    let Value::String(escaped) = &items[1] else {
        panic!()
    };
    assert!(!escaped.is_borrowed());
    assert_eq!(escaped.as_str(), "a\"b\\c/d\u{8}e\u{c}f\ng\rh\tiAé中😀");
}

#[test]
fn rejects_unpaired_surrogates() {
    for bad in [
        r#""\ud800""#,
        r#""\udbff\udbff""#,
        r#""\udc00""#,
        r#""\udfff\ud800""#,
        r#""\ud800\u""#,
        r#""\ud800\""#,
    ] {
        let err = parse(bad).unwrap_err();
        assert!(
            err.reason.contains("surrogate") || err.reason.contains("escape"),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        parse(r#""\udbff\udfff""#).unwrap().as_str(),
        Some("\u{10ffff}")
    );
}

#[test]
fn limits_nesting_depth() {
    let nested = |open: &str, close: &str, n: usize| open.repeat(n) + &close.repeat(n);
    assert!(parse(&nested("[", "]", MAX_DEPTH)).is_ok());
    assert_eq!(
        parse(&nested("[", "]", MAX_DEPTH + 1)).unwrap_err().reason,
        "nesting too deep"
    );
    let object = |n: usize| "{\"a\":".repeat(n) + "1" + &"}".repeat(n);
    assert!(parse(&object(MAX_DEPTH)).is_ok());
    assert!(parse(&object(MAX_DEPTH + 1)).is_err());
    // Far deeper than any stack would take, had the limit not been there.
    assert!(parse(&"[".repeat(1_000_000)).is_err());
    assert!(parse(&"{\"\":".repeat(1_000_000)).is_err());
}

#[test]
fn reports_where_and_why() {
    let err = parse("[1,]").unwrap_err();
    assert_eq!((err.offset, err.reason), (3, "expected a value"));
    let err = parse("{\"a\" 1}").unwrap_err();
    assert_eq!((err.offset, err.reason), (5, "expected ':'"));
    let err = parse("[] x").unwrap_err();
    assert_eq!(err.offset, 3);
    assert_eq!(
        err.to_string(),
        "invalid JSON at byte 3: trailing characters after the document"
    );
    let err = parse_bytes(b"[\"\xff\"]").unwrap_err();
    assert_eq!((err.offset, err.reason), (2, "invalid UTF-8"));
    assert_eq!(
        parse_bytes(b" [true] ").unwrap(),
        Value::Array(vec![Value::Bool(true)])
    );
}

#[test]
fn helpers() {
    let v = parse(
        r#"{"n":42,"s":"-7","big":"18446744073709551615","f":1.5,"e":"1e3","b":true,"z":null,
            "a":[1,2],"dup":1,"dup":2}"#,
    )
    .unwrap();
    assert_eq!(v.get("n").and_then(Value::as_i64), Some(42));
    assert_eq!(v.get("n").and_then(Value::as_u64), Some(42));
    assert_eq!(v.get("s").and_then(Value::as_i64), Some(-7));
    assert_eq!(v.get("s").and_then(Value::as_u64), None);
    assert_eq!(v.get("big").and_then(Value::as_u64), Some(u64::MAX));
    assert_eq!(v.get("big").and_then(Value::as_i64), None);
    assert_eq!(v.get("f").and_then(Value::as_i64), None);
    assert_eq!(v.get("e").and_then(Value::as_i64), None);
    assert_eq!(v.get("f"), Some(&Value::Number("1.5")));
    assert_eq!(v.get("b").and_then(Value::as_bool), Some(true));
    assert!(v.get("z").is_some_and(Value::is_null));
    assert_eq!(
        v.get("a").and_then(Value::as_array).map(<[_]>::len),
        Some(2)
    );
    assert_eq!(v.get("dup").and_then(Value::as_i64), Some(1));
    assert_eq!(v.get("s").and_then(Value::as_str), Some("-7"));
    assert!(v.get("missing").is_none());
    assert!(v.get("a").unwrap().get("n").is_none());
    assert_eq!(v.as_object().map(<[_]>::len), Some(10));
    assert_eq!(Value::Null.as_str(), None);
}

#[test]
fn six_megabyte_string_is_borrowed() {
    let body = "x".repeat(6 << 20) + "é" + &"y".repeat(1000);
    let text = format!("{{\"value\":\"{body}\"}}");
    let v = parse(&text).unwrap();
    let Some(Value::String(s)) = v.get("value") else {
        panic!()
    };
    assert!(s.is_borrowed());
    assert_eq!(s.len(), body.len());
    assert!(std::ptr::eq(s.as_str().as_ptr(), text[10..].as_ptr()));

    // The same with one escape near the end still decodes the whole value.
    let text = format!("{{\"value\":\"{body}\\n\"}}");
    let v = parse(&text).unwrap();
    assert_eq!(
        v.get("value").and_then(Value::as_str).map(str::len),
        Some(body.len() + 1)
    );
}

#[test]
fn write_str_matches_serde_json() {
    let mut cases: Vec<String> = (0..=0x7f_u8).map(|b| char::from(b).to_string()).collect();
    cases.extend(
        [
            "",
            "plain",
            "a\"b\\c",
            "line\nbreak\r\n",
            "\u{0}\u{1}\u{1f} ctl",
            "é中😀\u{2028}",
            "long run before the escape at the end of it\"",
            "\"\"\"\"\"\"\"\"\"\"",
        ]
        .map(String::from),
    );
    let mut rng = Rng(5);
    cases.extend((0..2000).map(|_| rng.string()));
    for s in &cases {
        let mut out = String::from("x");
        write_str(&mut out, s);
        assert_eq!(out[1..], serde_json::to_string(s).unwrap(), "{s:?}");
        assert_eq!(parse(&out[1..]).unwrap().as_str(), Some(s.as_str()));
    }
}
