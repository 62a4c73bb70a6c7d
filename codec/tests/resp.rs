//! The RESP2 reader.

use kvplug_codec::resp::{self, MAX_DEPTH, Reply, parse};

fn bulk(b: &[u8]) -> Reply {
    Reply::Bulk(Some(b.to_vec()))
}

#[test]
fn each_type() {
    assert_eq!(parse(b"+OK\r\n"), Ok(Reply::Simple("OK".into())));
    assert_eq!(parse(b"+\r\n"), Ok(Reply::Simple(String::new())));
    assert_eq!(
        parse(b"-ERR unknown command\r\n"),
        Ok(Reply::Error("ERR unknown command".into()))
    );
    assert_eq!(parse(b":123\r\n"), Ok(Reply::Integer(123)));
    assert_eq!(
        parse(b":-9223372036854775808\r\n"),
        Ok(Reply::Integer(i64::MIN))
    );
    assert_eq!(parse(b"$5\r\nhello\r\n"), Ok(bulk(b"hello")));
    assert_eq!(parse(b"$0\r\n\r\n"), Ok(bulk(b"")));
    assert_eq!(parse(b"$-1\r\n"), Ok(Reply::Bulk(None)));
    assert_eq!(parse(b"*0\r\n"), Ok(Reply::Array(Some(vec![]))));
    assert_eq!(parse(b"*-1\r\n"), Ok(Reply::Array(None)));
    assert_eq!(
        parse(b"*3\r\n$3\r\nfoo\r\n$-1\r\n:7\r\n"),
        Ok(Reply::Array(Some(vec![
            bulk(b"foo"),
            Reply::Bulk(None),
            Reply::Integer(7)
        ])))
    );
}

#[test]
fn bulk_strings_are_binary_safe() {
    assert_eq!(
        parse(b"$8\r\n\r\n\0\xff$1\r\n\r\n"),
        Ok(bulk(b"\r\n\0\xff$1\r\n"))
    );
    let data: Vec<u8> = (0..=255).cycle().take(100_000).collect();
    let mut wire = format!("${}\r\n", data.len()).into_bytes();
    wire.extend_from_slice(&data);
    wire.extend_from_slice(b"\r\n");
    assert_eq!(parse(&wire), Ok(Reply::Bulk(Some(data))));
}

#[test]
fn nested_arrays() {
    assert_eq!(
        parse(b"*2\r\n*2\r\n+a\r\n*-1\r\n*1\r\n-E\r\n"),
        Ok(Reply::Array(Some(vec![
            Reply::Array(Some(vec![Reply::Simple("a".into()), Reply::Array(None)])),
            Reply::Array(Some(vec![Reply::Error("E".into())])),
        ])))
    );
    let nested = |n: usize| "*1\r\n".repeat(n) + ":1\r\n";
    assert!(parse(nested(MAX_DEPTH).as_bytes()).is_ok());
    assert_eq!(
        parse(nested(MAX_DEPTH + 1).as_bytes()).unwrap_err().reason,
        "nesting too deep"
    );
    assert!(parse("*1\r\n".repeat(1_000_000).as_bytes()).is_err());
}

#[test]
fn every_truncation_is_an_error() {
    let wire = b"*4\r\n+OK\r\n$6\r\nab\r\ncd\r\n*2\r\n:-12\r\n$-1\r\n-ERR x\r\n";
    assert!(parse(wire).is_ok());
    for cut in 0..wire.len() {
        assert!(parse(&wire[..cut]).is_err(), "cut at {cut}");
    }
}

#[test]
fn rejects_malformed_replies() {
    for bad in [
        &b""[..],
        b"+OK",
        b"+OK\r",
        b"+OK\n",
        b"+O\rK\r\n",
        b":\r\n",
        b":12a\r\n",
        b":99999999999999999999\r\n",
        b"$5\r\nhello",
        b"$5\r\nhello\n",
        b"$5\r\nhelloXX",
        b"$5\r\nhell\r\n",
        b"$-2\r\n",
        b"$x\r\n",
        b"*-2\r\n",
        b"*1\r\n",
        b"*2\r\n:1\r\n",
        b"%1\r\n:1\r\n:1\r\n",
        b"!\r\n",
        b"+OK\r\n+OK\r\n",
        b"$-1\r\n\r\n",
        b":1\r\n ",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    let err = parse(b"+OK\r\nx").unwrap_err();
    assert_eq!(err.offset, 5);
    assert_eq!(
        err.to_string(),
        "invalid RESP at byte 5: trailing bytes after the reply"
    );
}

#[test]
fn hostile_lengths_allocate_nothing() {
    for bad in [
        &b"*999999999\r\n"[..],
        b"*9223372036854775807\r\n:1\r\n",
        b"$999999999\r\nabc\r\n",
        b"$9223372036854775807\r\n",
        b"*4\r\n:1\r\n:2\r\n:3\r\n",
    ] {
        assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
    // Nested arrays that each claim the whole remaining input still only fail.
    let mut wire = "*100000\r\n".repeat(MAX_DEPTH).into_bytes();
    wire.extend(std::iter::repeat_n(b'+', 400_000));
    assert!(parse(&wire).is_err());
}

#[test]
fn invalid_utf8_in_simple_strings_is_replaced() {
    assert_eq!(
        parse(b"-ERR \xff\r\n"),
        Ok(Reply::Error("ERR \u{fffd}".into()))
    );
}

#[test]
fn owned_parsing_agrees_with_borrowed_parsing() {
    let cases: [&[u8]; 10] = [
        b"$3\r\nabc\r\n",
        b"$0\r\n\r\n",
        b"$-1\r\n",
        b"$3\r\nabcd\r\n",
        b"$3\r\nab\r\n",
        b"$3\r\nabc\r\n+x\r\n",
        b"$99999999999999999999\r\n",
        b"$-2\r\n",
        b":5\r\n",
        b"*1\r\n$1\r\nx\r\n",
    ];
    for case in cases {
        assert_eq!(
            resp::parse_owned(case.to_vec(), usize::MAX),
            parse(case),
            "{case:?}"
        );
    }
    // The value keeps the input's buffer.
    let input = b"$5\r\nhello\r\n".to_vec();
    let address = input.as_ptr();
    let Ok(Reply::Bulk(Some(value))) = resp::parse_owned(input, usize::MAX) else {
        panic!("a bulk string");
    };
    assert_eq!((value.as_slice(), value.as_ptr()), (&b"hello"[..], address));
}

#[test]
fn an_element_budget_refuses_long_arrays_before_building_them() {
    // A million empty strings: 6 bytes each on the wire, a 32-byte reply each in memory.
    let mut input = b"*1000000\r\n".to_vec();
    for _ in 0..1_000_000 {
        input.extend_from_slice(b"$0\r\n\r\n");
    }
    let refused = resp::parse_owned(input.clone(), 64).unwrap_err();
    assert_eq!(
        (refused.offset, refused.reason),
        (10, "more array elements than this answer can hold")
    );
    // The budget counts nested elements too, and a reply within it reads as before.
    let nested = b"*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n";
    assert!(resp::parse_within(nested, 3).is_err());
    assert_eq!(resp::parse_within(nested, 4), parse(nested));
    assert!(
        matches!(resp::parse_within(&input, 1_000_000), Ok(Reply::Array(Some(items))) if items.len() == 1_000_000)
    );
}
