//! "Did you mean …?": the nearest known name to a misspelt one, by edit distance.

/// The candidate nearest to `word`, if one is close enough to be what the sender meant: at most one edit per
/// four characters of the candidate (one to three), counting a swap of two neighbours as one edit and ignoring
/// ASCII case. Ties go to the earlier candidate.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let limit = (candidate.chars().count() / 4).clamp(1, 3);
            distance(word, candidate, limit).map(|d| (d, candidate))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, candidate)| candidate)
}

/// The optimal string alignment distance between `a` and `b` (insertions, deletions, substitutions and swaps of
/// neighbours), if it is at most `limit`. Linear in the length of a wildly longer input: lengths that differ by
/// more than `limit` are answered without comparing.
pub(crate) fn distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let (a_len, b_len) = (a.chars().count(), b.chars().count());
    if a_len.abs_diff(b_len) > limit {
        return None;
    }
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Three rows of the classic table: two back (for swaps), the previous one and the current one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            current[j] = d;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    let d = previous[b.len()];
    (d <= limit).then_some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        for (a, b, d) in [
            ("", "", 0),
            ("email", "email", 0),
            ("Email", "email", 0),
            ("emial", "email", 1),
            ("marketing_optin", "marketing_opt_in", 1),
            ("payment.recieved", "payment.received", 1),
            ("user.signup", "user.signed_up", 3),
            ("kitten", "sitting", 3),
        ] {
            assert_eq!(distance(a, b, 10), Some(d), "{a} / {b}");
            assert_eq!(distance(b, a, 10), Some(d), "{b} / {a}");
        }
        assert_eq!(distance("kitten", "sitting", 2), None);
        assert_eq!(distance(&"x".repeat(100_000), "email", 3), None);
    }

    #[test]
    fn suggests_only_what_is_close() {
        let members = [
            "user_id",
            "email",
            "name",
            "marketing_opt_in",
            "signed_up_at",
        ];
        assert_eq!(
            nearest("marketing_optin", members),
            Some("marketing_opt_in")
        );
        assert_eq!(nearest("mail", members), Some("email"));
        assert_eq!(nearest("nmae", members), Some("name"));
        assert_eq!(nearest("userid", members), Some("user_id"));
        assert_eq!(nearest("nickname", members), None);
        assert_eq!(nearest("x", members), None);
        assert_eq!(nearest("", members), None);
    }
}
