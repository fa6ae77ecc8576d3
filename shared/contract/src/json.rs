//! A strict JSON scanner for the decoding fast paths (issue #15): the envelope's own ([`crate::Envelope::decode`],
//! [`crate::Envelope::parse`]) and the consumer's Kinesis batch.
//!
//! It borrows everything and allocates nothing; strings are found with `memchr` (SIMD: SSE2/AVX2 on x86, NEON on
//! arm64). It reads only what it is sure to read as serde_json does and answers `None` for anything else (a
//! syntax error, but also what is valid and unusual); the caller then takes its serde_json path, which decides
//! and words every error. So a fast path is never more lenient than the serde_json one: whatever it accepts,
//! serde_json accepts and reads to the same value.

/// Deepest nesting [`Scanner::skip_value`] walks (serde_json's own limit for values it builds).
const MAX_DEPTH: usize = 128;

/// A JSON string as it appears in the document, between its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Str<'a> {
    /// The bytes between the quotes, escapes as written.
    pub raw: &'a [u8],
    /// The same as text, when the scanner reads a `str` (already checked for UTF-8 as a whole).
    text: Option<&'a str>,
    /// Whether it holds a backslash escape (then `raw` is not its value: see [`Str::unescaped`]).
    pub escaped: bool,
}

impl<'a> Str<'a> {
    /// Whether it is `name`, written without escapes (a key written with them is matched by its
    /// [`Str::unescaped`] value).
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        !self.escaped && self.raw == name.as_bytes()
    }

    /// Its value, borrowed when it has no escape; `None` if `raw` is not UTF-8 or an escape does not decode (a
    /// lone surrogate), as serde_json would refuse it.
    #[inline(always)]
    pub fn unescaped(&self) -> Option<std::borrow::Cow<'a, str>> {
        let text = match self.text {
            Some(text) => text,
            None => std::str::from_utf8(self.raw).ok()?,
        };
        if !self.escaped {
            return Some(std::borrow::Cow::Borrowed(text));
        }
        // Rare: serde_json itself decodes the escapes, so they mean exactly what they mean on the slow path.
        let mut quoted = String::with_capacity(text.len() + 2);
        quoted.push('"');
        quoted.push_str(text);
        quoted.push('"');
        serde_json::from_str::<String>(&quoted)
            .ok()
            .map(std::borrow::Cow::Owned)
    }
}

/// A cursor over a JSON document's bytes.
///
/// Its small steps ([`Scanner::peek`], [`Scanner::string`], [`Str::unescaped`]) are always inlined: called once
/// per member, their calls and the `Option<Str>` they return through memory were a fifth of the consumer's decode
/// (`make bench ARGS=consumer`: the decode went from 0.83x to 0.73x of the baseline with them inlined).
#[derive(Debug, Clone)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    /// `bytes` as text, when the scanner reads a `str`: its strings need no UTF-8 check of their own.
    text: Option<&'a str>,
    at: usize,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Scanner {
            bytes,
            text: None,
            at: 0,
        }
    }

    /// A scanner at the start of `text`.
    pub fn of_text(text: &'a str) -> Self {
        Scanner {
            bytes: text.as_bytes(),
            text: Some(text),
            at: 0,
        }
    }

    /// The byte offset the scanner is at.
    pub fn position(&self) -> usize {
        self.at
    }

    /// Skips JSON whitespace; the next byte, if any.
    #[inline(always)]
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Skips whitespace and then `byte`, if it comes next.
    #[inline(always)]
    pub fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Whether nothing but whitespace is left.
    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// The string that comes next.
    #[inline(always)]
    pub fn string(&mut self) -> Option<Str<'a>> {
        self.eat(b'"')?;
        let start = self.at;
        let mut escaped = false;
        loop {
            self.at = special(self.bytes, self.at)?;
            match self.bytes[self.at] {
                b'"' => {
                    let raw = &self.bytes[start..self.at];
                    let text = self.text.and_then(|text| text.get(start..self.at));
                    self.at += 1;
                    return Some(Str { raw, text, escaped });
                }
                // Control characters must be escaped in a JSON string.
                b if b < 0x20 => return None,
                _ => {}
            }
            escaped = true;
            self.escape()?;
        }
    }

    /// The string that comes next, up to its closing quote only: its bytes are not checked at all (for a value
    /// whose own decoding refuses anything but a few ASCII characters, as base64 does: `None` from it then sends
    /// the caller to its slow path, which reads escapes and control characters as JSON says).
    #[inline]
    pub fn string_unchecked(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let rest = self.bytes.get(self.at..)?;
        let end = memchr::memchr(b'"', rest)?;
        self.at += end + 1;
        Some(&rest[..end])
    }

    /// Past one escape (the scanner is at its backslash).
    fn escape(&mut self) -> Option<()> {
        match self.bytes.get(self.at + 1)? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 2,
            b'u' => {
                let hex = self.bytes.get(self.at + 2..self.at + 6)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                self.at += 6;
            }
            _ => return None,
        }
        Some(())
    }

    /// The number that comes next, as written (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`).
    #[inline]
    pub fn number(&mut self) -> Option<&'a str> {
        self.peek()?;
        let start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            self.digits1()?;
        }
        if matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.bytes.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            self.digits1()?;
        }
        // The digits and signs above are ASCII.
        std::str::from_utf8(&self.bytes[start..self.at]).ok()
    }

    /// The number that comes next as serde_json reads it into an `f64`, in the one form a Kinesis arrival time
    /// takes, `1795000000.123` (digits, maybe a fraction; at most 15 digits in all), read and converted in one
    /// pass; `None`, and the scanner where it was, for any other number (then [`Scanner::number`] and
    /// [`exact_f64`] read it): it came to 5 % of the consumer's decode as those two passes and a search.
    #[inline]
    pub fn decimal(&mut self) -> Option<f64> {
        // 10^-n for the fraction's n digits: the integer is below 2^53 and the power exact, so one correctly
        // rounded division gives serde_json's bits (as `exact_f64` says).
        const POW10: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        self.peek()?;
        let bytes = self.bytes.get(self.at..)?;
        let (mut value, mut count, mut frac) = (0u64, 0usize, None);
        for &b in bytes {
            match b {
                b'0'..=b'9' => {
                    count += 1;
                    value = value * 10 + u64::from(b - b'0');
                    if count > 15 {
                        return None;
                    }
                }
                b'.' if frac.is_none() => frac = Some(count),
                // Another `.`, an exponent, a sign: left to the general reading.
                b'.' | b'e' | b'E' | b'+' | b'-' => return None,
                _ => break,
            }
        }
        let int_digits = frac.unwrap_or(count);
        let frac_digits = count - int_digits;
        // JSON's own rules: digits before a point and after it, no leading zero before another digit.
        if int_digits == 0
            || frac == Some(count)
            || (bytes.first() == Some(&b'0') && int_digits > 1)
        {
            return None;
        }
        self.at += count + usize::from(frac.is_some());
        // At most 15 digits: below 2^53, exact as a float.
        #[allow(clippy::cast_precision_loss)]
        let value = value as f64;
        Some(if frac_digits == 0 {
            value
        } else {
            value / POW10[frac_digits]
        })
    }

    fn digits(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
    }

    fn digits1(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.at.checked_add(word.len())?;
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    /// The literal `true`, `false` or `null` that comes next.
    pub fn keyword(&mut self) -> Option<Keyword> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| Keyword::True),
            b'f' => self.literal(b"false").map(|()| Keyword::False),
            b'n' => self.literal(b"null").map(|()| Keyword::Null),
            _ => None,
        }
    }

    /// Past the value that comes next, whatever it is, checking it as strictly as [`Scanner::string`] and
    /// [`Scanner::number`] do; containers at most [`MAX_DEPTH`] deep.
    #[inline(always)]
    pub fn skip_value(&mut self) -> Option<()> {
        // Most values skipped are strings (an event's members, a record's attributes): past one here, inlined,
        // without the containers' bookkeeping.
        if self.peek()? == b'"' {
            return self.string().map(|_| ());
        }
        self.skip_any()
    }

    /// [`Scanner::skip_value`] of any value.
    fn skip_any(&mut self) -> Option<()> {
        // Each open container: whether it is an object (its members have keys).
        let mut open: Vec<bool> = Vec::new();
        loop {
            // One value.
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    let object = self.bytes[self.at] == b'{';
                    self.at += 1;
                    if open.len() >= MAX_DEPTH {
                        return None;
                    }
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.at += 1;
                    } else {
                        open.push(object);
                        if object {
                            self.string()?;
                            self.eat(b':')?;
                        }
                        continue;
                    }
                }
                b't' | b'f' | b'n' => {
                    self.keyword()?;
                }
                _ => {
                    self.number()?;
                }
            }
            // After a value: the next member or element, or the end of containers.
            loop {
                let Some(&object) = open.last() else {
                    return Some(());
                };
                match self.peek()? {
                    b',' => {
                        self.at += 1;
                        if object {
                            self.string()?;
                            self.eat(b':')?;
                        }
                        break;
                    }
                    b'}' if object => {
                        self.at += 1;
                        open.pop();
                    }
                    b']' if !object => {
                        self.at += 1;
                        open.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Reads an object's members: `member` is called with each key, the scanner before its value, and must read
    /// the value; `None` from it stops the scan.
    pub fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Str<'a>) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        self.members(&mut member)
    }

    /// The rest of an object whose members were read up to one's value ([`Scanner::object`] from there on): its
    /// `}`, or a `,` and the members after it.
    pub fn object_rest(
        &mut self,
        mut member: impl FnMut(&mut Self, Str<'a>) -> Option<()>,
    ) -> Option<()> {
        if !self.next_member()? {
            return Some(());
        }
        self.members(&mut member)
    }

    /// Members from the next key to the object's `}`.
    fn members(&mut self, member: &mut impl FnMut(&mut Self, Str<'a>) -> Option<()>) -> Option<()> {
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            member(self, key)?;
            if !self.next_member()? {
                return Some(());
            }
        }
    }

    /// After a member's value: past its `,` (another member comes) or the object's `}`.
    #[inline(always)]
    fn next_member(&mut self) -> Option<bool> {
        let more = match self.peek()? {
            b',' => true,
            b'}' => false,
            _ => return None,
        };
        self.at += 1;
        Some(more)
    }

    /// Past `bytes` if the document goes on with exactly them here (no whitespace skipped); the scanner stays
    /// put otherwise.
    #[inline]
    pub fn skip_exactly(&mut self, bytes: &[u8]) -> bool {
        let matches = self
            .bytes
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(bytes));
        if matches {
            self.at += bytes.len();
        }
        matches
    }

    /// The bytes between two positions of the scanner (as [`Scanner::position`] gave them).
    pub fn between(&self, from: usize, to: usize) -> &'a [u8] {
        self.bytes.get(from..to).unwrap_or_default()
    }

    /// Reads an array's elements: `element` is called before each and must read it.
    pub fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// A JSON literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
}

/// Where the first quote, backslash or control character at or after `from` is: eight bytes a step for the first
/// few (most strings of an event are short, where a SIMD search's call costs more than it saves), then by
/// `memchr`.
#[inline(always)]
fn special(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const SHORT: usize = 24;
    // The high bit of each byte that is zero (exact for the lowest such byte, which is all this asks).
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        if at - from >= SHORT {
            let rest = &bytes[at..];
            let stop = memchr::memchr2(b'"', b'\\', rest)?;
            let span = &rest[..stop];
            // A fold, not a search: the compiler makes it SIMD; the search runs only for a broken string.
            if span.iter().fold(false, |bad, &b| bad | (b < 0x20)) {
                return span
                    .iter()
                    .position(|&b| b < 0x20)
                    .map(|control| at + control);
            }
            return Some(at + stop);
        }
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let found = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|i| at + i)
}

/// A number as serde_json reads it into an `f64`, when the fast path can be sure of the same bits: at most 15
/// significant digits and a power of ten up to 22 either way. serde_json (without `float_roundtrip`) takes the
/// digits as an integer and multiplies or divides it once by the power of ten; both exact there, that one operation
/// is correctly rounded, and this does the same.
pub fn exact_f64(number: &str) -> Option<f64> {
    const POW10: [f64; 23] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
        1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ];
    // One pass: the sign, the digits (at most 15, the fraction's counted), the exponent.
    let mut bytes = number.as_bytes();
    let negative = bytes.first() == Some(&b'-');
    if negative {
        bytes = &bytes[1..];
    }
    let (mut digits, mut count, mut frac_len, mut in_frac) = (0u64, 0usize, 0usize, false);
    let mut exponent = 0i32;
    while let Some((&b, rest)) = bytes.split_first() {
        match b {
            b'0'..=b'9' => {
                count += 1;
                if count > 15 {
                    return None;
                }
                digits = digits * 10 + u64::from(b - b'0');
                frac_len += usize::from(in_frac);
            }
            b'.' if !in_frac && count > 0 => in_frac = true,
            b'e' | b'E' if count > 0 => {
                exponent = std::str::from_utf8(rest).ok()?.parse::<i32>().ok()?;
                break;
            }
            _ => return None,
        }
        bytes = rest;
    }
    if count == 0 {
        return None;
    }
    let frac = frac_len;
    let power = exponent.checked_sub(i32::try_from(frac).ok()?)?;
    let scale = *POW10.get(usize::try_from(power.unsigned_abs()).ok()?)?;
    // At most 15 digits: below 2^53, exact as a float.
    #[allow(clippy::cast_precision_loss)]
    let value = digits as f64;
    let value = if power >= 0 {
        value * scale
    } else {
        value / scale
    };
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests;
