use super::*;

/// Whether serde_json reads `text` as one JSON value.
fn serde_reads(text: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(text).is_ok()
}

/// Whether the scanner reads `text` as one JSON value.
fn scans(text: &[u8]) -> bool {
    let mut s = Scanner::new(text);
    s.skip_value().is_some() && s.at_end()
}

#[test]
fn the_scanner_takes_only_what_serde_json_takes() {
    let valid: &[&[u8]] = &[
        b"{}",
        b"[]",
        b" {\"a\" : [1, -2.5e+3, true, false, null, \"x\\\"y\\u00e9\", {}], \"b\":{\"c\":[[]]}} ",
        b"\"a long string with more than twenty-four bytes in it, and then some more of them\"",
        b"0",
        b"-0.0e0",
        "\"é\"".as_bytes(),
    ];
    for text in valid {
        assert!(scans(text), "{}", String::from_utf8_lossy(text));
        assert!(serde_reads(text));
    }
    let invalid: &[&[u8]] = &[
        b"{",
        b"{\"a\"}",
        b"{\"a\":1,}",
        b"[1,]",
        b"01",
        b"1.",
        b".5",
        b"-",
        b"1e",
        b"+1",
        b"\"\\x\"",
        b"\"\\u12\"",
        b"\"a\x01b\"",
        b"\"a long string with more than twenty-four bytes in it \x1f and a control\"",
        b"tru",
        b"nul",
        b"{} {}",
        b"[1 2]",
        b"{\"a\" 1}",
        b"",
    ];
    for text in invalid {
        assert!(!scans(text), "{}", String::from_utf8_lossy(text));
    }
    // Random mutations of a document: whatever the scanner takes, serde_json takes.
    let seed = br#"{"Records":[{"kinesis":{"partitionKey":"acc_1","data":"eyJhIjoxfQ==","approximateArrivalTimestamp":1795000000.123},"eventID":"shardId-000000000000:4959","x":[1,{"y":null},"a\\nb"]}]}"#;
    let mut rng = crate::test_rng::XorShift::new(0x2545_f491_4f6c_dd1d);
    let mut next = |n: usize| rng.below(n);
    let alphabet = b"{}[],:\"\\ 0123456789.-+eEtrufalsn\x01\x7f";
    let (mut taken, mut refused) = (0, 0);
    for _ in 0..50_000 {
        let mut text = seed.to_vec();
        for _ in 0..=next(2) {
            let at = next(text.len());
            if next(2) == 0 {
                text.remove(at);
            } else {
                text.insert(at, alphabet[next(alphabet.len())]);
            }
        }
        if scans(&text) {
            taken += 1;
            assert!(serde_reads(&text), "{}", String::from_utf8_lossy(&text));
        } else {
            refused += 1;
        }
    }
    assert!(taken > 1_000 && refused > 1_000, "{taken} {refused}");
}

#[test]
fn strings_are_read_with_their_escapes() {
    let mut s = Scanner::of_text(r#""plain" "a\"b\u00e9""#);
    let plain = s.string().unwrap();
    assert!(plain.is("plain"));
    assert_eq!(plain.unescaped().unwrap(), "plain");
    let escaped = s.string().unwrap();
    assert!(escaped.escaped && !escaped.is("a\"bé"));
    assert_eq!(escaped.unescaped().unwrap(), "a\"bé");
    // A lone surrogate is refused, as serde_json refuses it in a string it reads.
    let mut s = Scanner::new(br#""\ud800""#);
    assert_eq!(s.string().unwrap().unescaped(), None);
    let mut s = Scanner::new(b"\"\xff\"");
    assert_eq!(s.string().unwrap().unescaped(), None);
}

/// 200,000 numbers as JSON may write them, each with serde_json's `f64` of it, at every length up to 18 digits:
/// integers, three-digit and long fractions, exponents either way, negative ones. What the float readers must
/// read to serde_json's very bits, or decline.
fn numbers(seed: u64) -> impl Iterator<Item = (String, f64)> {
    let mut rng = crate::test_rng::XorShift::new(seed);
    (0..200_000u64).map(move |i| {
        let state = rng.next_u64();
        let digits = state % 10u64.pow(1 + u32::try_from(i % 18).unwrap());
        let text = match i % 6 {
            0 => format!("{digits}"),
            1 => format!("{}.{:03}", digits / 1000, digits % 1000),
            2 => format!("{}.{}", digits % 100, digits),
            3 => format!("{digits}e{}", i64::try_from(state >> 59).unwrap() - 16),
            4 => format!("-{}.{}E-{}", digits, i % 10, state >> 60),
            _ => format!("{digits}.{}E-1", i % 10),
        };
        let serde = serde_json::from_str(&text).unwrap();
        (text, serde)
    })
}

#[test]
fn decimals_read_in_one_pass_are_serde_jsons_own() {
    let (mut taken, mut declined) = (0, 0);
    for (text, serde) in numbers(0x0dec_0dec_5eed) {
        let mut s = Scanner::of_text(&text);
        match s.decimal() {
            Some(fast) => {
                taken += 1;
                assert_eq!(fast.to_bits(), serde.to_bits(), "{text}");
                assert!(s.at_end(), "{text}");
            }
            None => {
                declined += 1;
                assert_eq!(s.position(), 0, "{text}");
            }
        }
    }
    assert!(taken > 50_000 && declined > 50_000, "{taken} {declined}");
    // What is not a number JSON writes, or not in this form, is left where it is.
    for text in [
        "01.5",
        "1.",
        ".5",
        "-1.5",
        "1.2.3",
        "1e5",
        "1234567890123456",
        "x",
    ] {
        let mut s = Scanner::of_text(text);
        assert_eq!(s.decimal(), None, "{text}");
        assert_eq!(s.position(), 0, "{text}");
    }
    // A number ends where a member's value does.
    let mut s = Scanner::of_text(" 1795000000.123,");
    assert_eq!(s.decimal(), Some(1_795_000_000.123));
    assert_eq!(s.peek(), Some(b','));
}

#[test]
fn exact_floats_are_serde_jsons_own() {
    let mut taken = 0;
    for (text, serde) in numbers(0x9e37_79b9_7f4a_7c15) {
        if let Some(fast) = exact_f64(&text) {
            taken += 1;
            assert_eq!(fast.to_bits(), serde.to_bits(), "{text}");
        }
    }
    assert!(taken > 100_000, "{taken}");
    assert_eq!(exact_f64("1795000000.123"), Some(1_795_000_000.123));
    assert_eq!(exact_f64("1234567890123456"), None);
    assert_eq!(exact_f64("1e23"), None);
}
