use super::*;

fn codes(f: impl FnOnce(&mut Checker)) -> Vec<(Code, String)> {
    let mut c = Checker::new();
    f(&mut c);
    c.into_violations()
        .into_iter()
        .map(|v| (v.code, v.field.unwrap_or_default()))
        .collect()
}

#[test]
fn currency_list_is_sorted_unique_and_upper_case() {
    assert!(CURRENCIES.windows(2).all(|w| w[0] < w[1]));
    assert!(CURRENCIES
        .iter()
        .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())));
}

#[test]
fn currencies() {
    for ok in ["EUR", "USD", "JPY", "GBP", "CHF", "XCG"] {
        assert!(is_currency(ok), "{ok}");
    }
    for bad in [
        "eur", "EURO", "EU", "", "XXX", "XAU", "XTS", "HRK", "ABC", "€",
    ] {
        assert!(!is_currency(bad), "{bad}");
    }
    assert_eq!(
        codes(|c| c.currency("/data/currency", "usd")),
        [(Code::InvalidCurrency, "/data/currency".into())]
    );
}

#[test]
fn emails() {
    for ok in [
        "a@b.co",
        "first.last+tag@mail.example.com",
        "x_y-z@sub.xn--p1ai",
        "o'neil@example.ie",
    ] {
        assert!(is_email(ok), "{ok}");
    }
    for bad in [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@b",
        "a@b.c",
        "a..b@example.com",
        ".a@example.com",
        "a.@example.com",
        "a b@example.com",
        "a@exa mple.com",
        "a@-example.com",
        "a@example-.com",
        "a@example..com",
        "a@example.c0m",
        "é@example.com",
        "a@[127.0.0.1]",
        "\"q\"@example.com",
    ] {
        assert!(!is_email(bad), "{bad:?}");
    }
    let long_local = format!("{}@example.com", "a".repeat(65));
    assert!(!is_email(&long_local));
    assert_eq!(
        codes(|c| c.email("/data/email", "nope")),
        [(Code::InvalidEmail, "/data/email".into())]
    );
    assert_eq!(
        codes(|c| c.email("/data/email", "")),
        [(Code::Empty, "/data/email".into())]
    );
    let huge = format!("{}@{}.com", "a".repeat(60), "b".repeat(250));
    assert_eq!(
        codes(|c| c.email("/e", &huge)),
        [(Code::TooLong, "/e".into())]
    );
}

#[test]
fn amounts() {
    assert!(codes(|c| c.amount("/a", 1)).is_empty());
    assert!(codes(|c| c.amount("/a", MAX_AMOUNT_MINOR)).is_empty());
    assert_eq!(
        codes(|c| c.amount("/a", 0)),
        [(Code::AmountNotPositive, "/a".into())]
    );
    assert_eq!(
        codes(|c| c.amount("/a", -5)),
        [(Code::AmountNotPositive, "/a".into())]
    );
    assert_eq!(
        codes(|c| c.amount("/a", MAX_AMOUNT_MINOR + 1)),
        [(Code::AmountTooLarge, "/a".into())]
    );
}

#[test]
fn ids() {
    assert!(codes(|c| c.id("/id", "usr_01H:x-y.z@1")).is_empty());
    assert_eq!(codes(|c| c.id("/id", "")), [(Code::Empty, "/id".into())]);
    assert_eq!(
        codes(|c| c.id("/id", "a b")),
        [(Code::InvalidIdentifier, "/id".into())]
    );
    assert_eq!(
        codes(|c| c.id("/id", "ü")),
        [(Code::InvalidIdentifier, "/id".into())]
    );
    assert!(codes(|c| c.id("/id", &"a".repeat(MAX_ID_LEN))).is_empty());
    assert_eq!(
        codes(|c| c.id("/id", &"a".repeat(MAX_ID_LEN + 1))),
        [(Code::TooLong, "/id".into())]
    );
}

#[test]
fn texts() {
    assert!(codes(|c| c.text("/t", "Zoë Ångström", 20)).is_empty());
    assert_eq!(
        codes(|c| c.text("/t", "  ", 20)),
        [(Code::Empty, "/t".into())]
    );
    assert_eq!(
        codes(|c| c.text("/t", "abc", 2)),
        [(Code::TooLong, "/t".into())]
    );
    assert_eq!(
        codes(|c| c.text("/t", "a\u{7}b", 20)),
        [(Code::InvalidText, "/t".into())]
    );
    // Invisible characters that change how a name reads are refused; joiners that scripts need are not.
    for spoof in [
        "Ada\u{202E}nimda",
        "Ada\u{2066}x\u{2069}",
        "A\u{200B}da",
        "\u{FEFF}Ada",
        "Ada\u{2028}Bob",
        "Ada\u{E0041}",
        "Ada\u{200F}",
    ] {
        assert_eq!(
            codes(|c| c.text("/t", spoof, 40)),
            [(Code::InvalidText, "/t".into())],
            "{spoof:?}"
        );
    }
    assert!(codes(|c| c.text("/t", "می\u{200C}خواهم", 20)).is_empty());
    assert!(codes(|c| c.text("/t", "👩\u{200D}💻 Ada", 20)).is_empty());
    assert!(codes(|c| c.text("/t", "שלום Ada", 20)).is_empty());
    // Length counts characters, not bytes.
    assert!(codes(|c| c.text("/t", "ééé", 3)).is_empty());
    assert!(codes(|c| c.opt_text("/t", None, 3)).is_empty());
}

#[test]
fn the_currency_set_is_the_list() {
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            for c in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b, c]).unwrap();
                assert_eq!(
                    is_currency(&code),
                    CURRENCIES.binary_search(&code.as_str()).is_ok(),
                    "{code}"
                );
            }
        }
    }
}

/// The e-mail rule of [`is_email`] written plainly, over `str`: the reference its byte version must agree with.
fn is_email_by_parts(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&b);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.bytes().all(atext));
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return false;
    };
    let tld_ok =
        tld.len() >= 2 && (tld.bytes().all(|b| b.is_ascii_alphabetic()) || tld.starts_with("xn--"));
    local_ok && domain.len() <= 253 && domain.split('.').all(label_ok) && tld_ok
}

#[test]
fn the_email_check_over_bytes_agrees_with_the_plain_rule() {
    // Addresses built from the characters that matter to the rule, at the lengths where its limits are.
    const PIECES: &[&str] = &[
        "a", "Z", "0", "9", "-", ".", "@", "_", "+", "'", " ", "xn--", "é", "\"", "co", "example",
        "[",
    ];
    let mut rng = crate::test_rng::XorShift::new(0x5eed_e3a1);
    let (mut valid, mut total) = (0, 0);
    for _ in 0..200_000 {
        let mut address = String::new();
        for _ in 0..rng.below(12) {
            address.push_str(PIECES[rng.below(PIECES.len())]);
        }
        if rng.below(4) == 0 {
            // Near the limits: a long local part or a long label.
            let long = "a".repeat(60 + rng.below(8));
            address.insert_str(0, &long);
        }
        if rng.below(3) == 0 {
            address.push_str(["@b.co", ".com", "@example.org", "-.io"][rng.below(4)]);
        }
        assert_eq!(
            is_email(&address),
            is_email_by_parts(&address),
            "{address:?}"
        );
        valid += usize::from(is_email(&address));
        total += 1;
    }
    // Both answers occur often enough for the comparison to mean something.
    assert!(
        valid > total / 50 && valid < total / 2,
        "{valid} of {total} valid"
    );
    let edge = [
        format!("{}@example.com", "a".repeat(64)),
        format!("a@{}.com", "b".repeat(63)),
        format!("a@{}.com", "b".repeat(64)),
        format!("a@{}.co", "b.".repeat(125)),
        format!("a@{}.co", "b.".repeat(126)),
    ];
    for address in &edge {
        assert_eq!(is_email(address), is_email_by_parts(address), "{address:?}");
    }
}
