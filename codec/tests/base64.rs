//! The base64 codec against the `base64` crate, plus its edge cases.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD,
};
use kvplug_codec::base64::{DecodeError, decode, decode_in_place, encode, encode_into};

mod common;
use common::Rng;

impl Rng {
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn matches_the_base64_crate_for_lengths_up_to_300() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for len in 0..300 {
        for _ in 0..4 {
            let data = rng.bytes(len);
            let ours = encode(&data);
            assert_eq!(ours, STANDARD.encode(&data), "len {len}");
            assert_eq!(decode(&ours).unwrap(), data, "len {len}");
            assert_eq!(
                decode(&STANDARD_NO_PAD.encode(&data)).unwrap(),
                data,
                "len {len}"
            );
        }
    }
}

#[test]
fn every_byte_value_at_every_group_position() {
    for shift in 0..3 {
        let data: Vec<u8> = std::iter::repeat_n(0u8, shift).chain(0..=255).collect();
        let text = encode(&data);
        assert_eq!(text, STANDARD.encode(&data));
        assert_eq!(decode(&text).unwrap(), data);
    }
}

#[test]
fn known_vectors() {
    // RFC 4648 §10.
    for (plain, coded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(encode(plain.as_bytes()), coded);
        assert_eq!(decode(coded).unwrap(), plain.as_bytes());
        assert_eq!(
            decode(coded.trim_end_matches('=')).unwrap(),
            plain.as_bytes()
        );
    }
}

#[test]
fn encode_into_appends() {
    let mut out = String::from("{\"v\":\"");
    encode_into(&mut out, b"hello");
    out.push_str("\"}");
    assert_eq!(out, "{\"v\":\"aGVsbG8=\"}");
    encode_into(&mut out, b"");
    assert_eq!(out, "{\"v\":\"aGVsbG8=\"}");
}

#[test]
fn rejects_malformed_input() {
    for bad in ["A", "AAAAA", "AAAAAAAAA"] {
        assert_eq!(decode(bad), Err(DecodeError::InvalidLength), "{bad:?}");
    }
    for bad in [
        "Q===",
        "====",
        "=AAA",
        "AA=A",
        "Zm9v!A==",
        "Zm9v YmFy",
        "Zm9v\nYmFy",
        "Zm9-",
        "Zm9_",
        "é123",
    ] {
        assert!(decode(bad).is_err(), "{bad:?}");
    }
    assert!(!DecodeError::InvalidByte.to_string().is_empty());
}

#[test]
fn accepts_what_a_lenient_base64_crate_accepts() {
    // Trailing bits unchecked and padding optional, as our decoder documents.
    let lenient = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let symbols = b"AQgz09+/=-";
    let mut rng = Rng(42);
    for _ in 0..200_000 {
        let len = (rng.next() % 13) as usize;
        let text: String = (0..len)
            .map(|_| char::from(symbols[(rng.next() % symbols.len() as u64) as usize]))
            .collect();
        let theirs = lenient.decode(&text);
        let ours = decode(&text);
        match (&ours, &theirs) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{text:?}"),
            (Err(_), Err(_)) => {}
            // The crate also takes partial padding ("g0="); ours wants padding to fill the group.
            (Err(DecodeError::InvalidByte), Ok(_))
                if text.ends_with('=') && !text.len().is_multiple_of(4) => {}
            _ => panic!("{text:?}: ours {ours:?}, theirs {theirs:?}"),
        }
    }
}

#[test]
fn four_mebibytes_round_trip() {
    let data = Rng(7).bytes(4 << 20);
    let text = encode(&data);
    assert_eq!(text.len(), (4usize << 20).div_ceil(3) * 4);
    assert_eq!(text.capacity(), text.len());
    assert_eq!(decode(&text).unwrap(), data);
}

/// The in-place decoder works in blocks of 4,096 symbols: lengths around and across block
/// edges, valid and not, give what `decode` gives.
#[test]
fn decoding_in_place_agrees_with_decode() {
    let mut rng = Rng(11);
    let in_place = |text: &str| {
        let mut buf = text.as_bytes().to_vec();
        decode_in_place(&mut buf).map(|n| buf[..n].to_vec())
    };
    for len in (0..40).chain(3060..3080).chain(6130..6150).chain([3 << 20]) {
        let data = rng.bytes(len);
        let text = encode(&data);
        assert_eq!(in_place(&text), Ok(data.clone()), "len {len}");
        assert_eq!(
            in_place(&STANDARD_NO_PAD.encode(&data)),
            Ok(data),
            "len {len}"
        );
        if !text.is_empty() {
            // One byte outside the alphabet anywhere, or one symbol too many.
            let mut bad = text.clone().into_bytes();
            let at = (rng.next() as usize) % bad.len();
            bad[at] = b'*';
            let bad = String::from_utf8(bad).unwrap();
            assert_eq!(in_place(&bad), decode(&bad), "len {len} at {at}");
            assert!(in_place(&bad).is_err());
            let long = format!("{}A", text.trim_end_matches('='));
            assert_eq!(in_place(&long), decode(&long), "len {len}");
        }
    }
}
