//! The validation rules shared by ingest (reject at the edge) and consumers (defence in depth).
//!
//! Each event's data type implements [`Validate`] by calling the rules of a [`Checker`] field by field; the
//! checker collects every violation, so a producer learns all that is wrong with an event in one answer.

use crate::violation::{Code, Violation};

/// Longest identifier (ids, subjects, aggregate ids): well within Kinesis's 256-character partition key.
pub const MAX_ID_LEN: usize = 128;
/// Longest `source` URI reference.
pub const MAX_SOURCE_LEN: usize = 256;
/// Longest e-mail address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Largest amount in minor units (10^15: a thousand billion dollars in cents).
pub const MAX_AMOUNT_MINOR: i64 = 1_000_000_000_000_000;

/// What a timestamp that does not parse is told (at `/time` and inside `data`): the rule and an example, never
/// the parser's own words.
pub(crate) const TIMESTAMP_MESSAGE: &str =
    "must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z";

/// Data that checks itself. `pointer` is where the value sits in the envelope (e.g. `/data`).
pub trait Validate {
    /// Pushes every violation into `checker`.
    fn validate(&self, checker: &mut Checker);
}

/// Collects violations; its rules name the field by JSON pointer.
#[derive(Debug, Default)]
pub struct Checker {
    violations: Vec<Violation>,
}

impl Checker {
    /// A checker with nothing found yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a violation found by a rule of the caller's own.
    pub fn push(&mut self, violation: Violation) {
        self.violations.push(violation);
    }

    /// Whether something was found at `field` already.
    pub(crate) fn reported_at(&self, field: &str) -> bool {
        self.violations
            .iter()
            .any(|v| v.field.as_deref() == Some(field))
    }

    /// What was found, in the order it was found.
    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    /// An identifier: 1 to 128 printable ASCII characters, no whitespace.
    pub fn id(&mut self, field: &str, value: &str) {
        self.id_max(field, value, MAX_ID_LEN);
    }

    /// An identifier with its own length limit.
    #[inline]
    pub fn id_max(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.push(Violation::at(Code::Empty, field, "must not be empty"));
        } else if value.len() > max {
            self.push(Violation::at(
                Code::TooLong,
                field,
                format!("must be at most {max} characters"),
            ));
        } else if value
            .bytes()
            // A fold, not `all`: without the early exit the compiler checks many bytes a step (every event has
            // several ids).
            .fold(false, |bad, b| bad | !b.is_ascii_graphic())
        {
            self.push(Violation::at(
                Code::InvalidIdentifier,
                field,
                "must be printable ASCII without whitespace",
            ));
        }
    }

    /// Free text: 1 to `max` characters, no control characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.push(Violation::at(Code::Empty, field, "must not be empty"));
        } else if value.chars().count() > max {
            self.push(Violation::at(
                Code::TooLong,
                field,
                format!("must be at most {max} characters"),
            ));
        } else if value
            .chars()
            .any(|ch| ch.is_control() || is_invisible_format(ch))
        {
            self.push(Violation::at(
                Code::InvalidText,
                field,
                "must not contain control characters, or invisible ones that change how text reads \
                 (bidirectional overrides and isolates, zero-width spaces, line separators)",
            ));
        }
    }

    /// Optional free text.
    pub fn opt_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(value) = value {
            self.text(field, value, max);
        }
    }

    /// An e-mail address (see [`is_email`]).
    pub fn email(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(Violation::at(Code::Empty, field, "must not be empty"));
        } else if value.len() > MAX_EMAIL_LEN {
            self.push(Violation::at(
                Code::TooLong,
                field,
                format!("must be at most {MAX_EMAIL_LEN} characters"),
            ));
        } else if !is_email(value) {
            self.push(Violation::at(
                Code::InvalidEmail,
                field,
                "must be an e-mail address like name@example.com",
            ));
        }
    }

    /// An active ISO 4217 currency code, upper case.
    pub fn currency(&mut self, field: &str, value: &str) {
        if !is_currency(value) {
            self.push(Violation::at(
                Code::InvalidCurrency,
                field,
                "must be an active ISO 4217 currency code in upper case, like EUR",
            ));
        }
    }

    /// An amount in integer minor units: positive and at most [`MAX_AMOUNT_MINOR`].
    pub fn amount(&mut self, field: &str, value: i64) {
        if value <= 0 {
            self.push(Violation::at(
                Code::AmountNotPositive,
                field,
                "must be a positive integer of minor units",
            ));
        } else if value > MAX_AMOUNT_MINOR {
            self.push(Violation::at(
                Code::AmountTooLarge,
                field,
                format!("must be at most {MAX_AMOUNT_MINOR}"),
            ));
        }
    }
}

/// A character people cannot see that changes how the text around it reads: Unicode's format characters
/// (category Cf: bidirectional embeddings, overrides, isolates and marks, zero-width spaces, the byte order
/// mark, invisible operators, tags) and the line and paragraph separators. A name holding one can show as
/// another name (the "Trojan Source" trick) in an e-mail, a dashboard or a log. The zero-width joiner and
/// non-joiner stay: Persian, Indic scripts and emoji need them.
pub fn is_invisible_format(ch: char) -> bool {
    matches!(ch,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'
        | '\u{200E}'..='\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

/// A pragmatic e-mail check: `local@domain`, an ASCII local part of RFC 5322 atoms joined by dots (at most 64
/// characters), and a domain of at least two DNS labels (letters, digits, inner hyphens; at most 63 each) whose
/// last is alphabetic. Quoted local parts, IP literals and unencoded international names are refused.
pub fn is_email(value: &str) -> bool {
    // One pass over each part with a table of byte classes: it runs for every event that carries an address, and
    // the rule written plainly (`tests::is_email_by_parts`, which a test compares this with) splits and searches
    // (2.3 % of the consumer's decode in perf).
    let bytes = value.as_bytes();
    let Some(at) = memchr::memrchr(b'@', bytes) else {
        return false;
    };
    let (local, domain) = (&bytes[..at], &bytes[at + 1..]);
    // Atoms of `atext` joined by single dots: none empty, so no dot first, last or twice in a row.
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.first() != Some(&b'.')
        && local.last() != Some(&b'.')
        && local.windows(2).all(|w| w != b"..")
        && local
            .iter()
            .all(|&b| b == b'.' || EMAIL_CLASS[usize::from(b)] & ATEXT != 0);
    if !local_ok || domain.len() > 253 {
        return false;
    }
    // Labels of letters, digits and inner hyphens, 1 to 63 long; the last (after a dot: two labels at least)
    // alphabetic or an IDN's `xn--`.
    let mut label_start = 0;
    let mut last_dot = None;
    for (i, &b) in domain.iter().enumerate() {
        if b == b'.' {
            if !label_ok(&domain[label_start..i]) {
                return false;
            }
            last_dot = Some(i);
            label_start = i + 1;
        } else if EMAIL_CLASS[usize::from(b)] & LABEL == 0 {
            return false;
        }
    }
    let tld = &domain[label_start..];
    last_dot.is_some()
        && label_ok(tld)
        && tld.len() >= 2
        && (tld.iter().all(u8::is_ascii_alphabetic) || tld.starts_with(b"xn--"))
}

/// A DNS label's length and ends (its characters are checked as they are read).
fn label_ok(label: &[u8]) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
}

/// [`EMAIL_CLASS`]: a character of an RFC 5322 atom.
const ATEXT: u8 = 1;
/// [`EMAIL_CLASS`]: a character of a DNS label (letters, digits, `-`).
const LABEL: u8 = 2;

/// The classes of each byte for [`is_email`], made at compile time.
const EMAIL_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            class[b] = ATEXT | LABEL;
        }
        b += 1;
    }
    let specials = b"!#$%&'*+/=?^_`{|}~-";
    let mut i = 0;
    while i < specials.len() {
        class[specials[i] as usize] |= ATEXT;
        i += 1;
    }
    class[b'-' as usize] |= LABEL;
    class
};

/// Whether `code` is an active ISO 4217 code of a circulating currency (funds, metals and test codes excluded).
pub fn is_currency(code: &str) -> bool {
    match code.as_bytes() {
        &[a, b, c] => {
            currency_index(a, b, c).is_some_and(|i| CURRENCY_SET[i / 64] & (1 << (i % 64)) != 0)
        }
        _ => false,
    }
}

/// Where three upper-case letters sit in [`CURRENCY_SET`].
const fn currency_index(a: u8, b: u8, c: u8) -> Option<usize> {
    if a.is_ascii_uppercase() && b.is_ascii_uppercase() && c.is_ascii_uppercase() {
        Some(((a - b'A') as usize * 26 + (b - b'A') as usize) * 26 + (c - b'A') as usize)
    } else {
        None
    }
}

/// [`CURRENCIES`] as a set of bits, one per three-letter code, made at compile time: a lookup is a few
/// instructions, where a search of the list compares strings (it showed in the consumer's profile).
const CURRENCY_SET: [u64; 26 * 26 * 26 / 64 + 1] = {
    let mut set = [0u64; 26 * 26 * 26 / 64 + 1];
    let mut i = 0;
    while i < CURRENCIES.len() {
        let code = CURRENCIES[i].as_bytes();
        if let Some(at) = currency_index(code[0], code[1], code[2]) {
            set[at / 64] |= 1 << (at % 64);
        }
        i += 1;
    }
    set
};

/// Active ISO 4217 currency codes of circulating currencies (list of 2025-07), sorted for binary search.
pub(crate) const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

#[cfg(test)]
mod tests;
