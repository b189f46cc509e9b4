//! Look-alike names (Granma's rule 1).
//!
//! Two names look alike when their *folded* forms are equal, or close by
//! edit distance. Folding ([`fold`]) is, in order:
//!
//! 1. NFKC, so compatibility forms (full-width `Ｎｏｔｅｓ`, ligatures,
//!    superscripts) become their plain letters;
//! 2. the Unicode confusable skeleton (UTS #39, from the
//!    `unicode-security` crate), which maps characters that look alike to
//!    one prototype: Cyrillic `о` and digit `0` to Latin `o`/`O`, `I` and
//!    `1` to `l`, `m` to `rn`, and drops default-ignorable characters
//!    (zero-width spaces and joiners);
//! 3. lower case, then the skeleton again (so `N0tes` and `notes` meet:
//!    the skeleton is case-sensitive, and `O` and `o` are different
//!    prototypes), done before lower-casing as well because lower-casing
//!    first would lose `I`→`l` (`PayPaI` must meet `Paypal`);
//! 4. whitespace and the punctuation that reads as spacing (`-`, `_`, `.`,
//!    `·`, apostrophes) dropped: `Note pad`, `note-pad` and `Notepad` read
//!    as one name.
//!
//! The edit distance (optimal string alignment: insert, delete, replace,
//! or swap two neighbours, each costing 1) is then compared with a budget
//! that grows with the name: none below 4 characters (`Map` and `Mop` are
//! different words, and short names leave no room), 1 from 4 characters
//! (`Note5` for `Notes`, `Ntoes`, `Notes!`), 2 from 8 (`Calendar` and
//! `Calnedar2`). The length is the shorter name's. A budget of a
//! third of the name would flag real, different words (`Clock` and
//! `Block` are at distance 1 and are flagged already: a false alarm Granma
//! can dismiss, where a missed look-alike is a phishing app). The length
//! is counted on the names as written (NFKC, spacing dropped), not on the
//! folded forms, which the skeleton lengthens (`m` becomes `rn`).

use unicode_normalization::UnicodeNormalization;
use unicode_security::skeleton;

/// The longest name compared, in characters; longer names are cut (a
/// manifest's name has at most 64).
const MAX_COMPARED: usize = 128;

/// Characters dropped as spacing.
fn is_spacing(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '_' | '.' | '·' | '\'' | '’' | '‐' | '‑' | '–' | '—'
        )
}

/// The folded form of a name (see the module doc): two names with one
/// folded form look the same to a person.
///
/// ```
/// use pola_powerbox::lookalike::fold;
/// assert_eq!(fold("N0tes"), fold("notes"));
/// assert_eq!(fold("Nоtes"), fold("Notes")); // Cyrillic о
/// assert_eq!(fold("PayPaI"), fold("Paypal"));
/// ```
pub fn fold(name: &str) -> String {
    let nfkc: String = name.chars().take(MAX_COMPARED).nfkc().collect();
    let once: String = skeleton(&nfkc).collect();
    let lower = once.to_lowercase();
    let twice: String = skeleton(&lower).collect();
    twice
        .to_lowercase()
        .chars()
        .filter(|c| !is_spacing(*c))
        .collect()
}

/// The edit budget for names whose shorter folded form has `len`
/// characters.
fn budget(len: usize) -> usize {
    match len {
        0..4 => 0,
        4..8 => 1,
        _ => 2,
    }
}

/// Whether `proposed` looks like `existing` (see the module doc).
///
/// ```
/// use pola_powerbox::name_looks_like;
/// assert!(name_looks_like("N0tes", "Notes"));
/// assert!(!name_looks_like("Clock", "Notes"));
/// ```
pub fn name_looks_like(proposed: &str, existing: &str) -> bool {
    let a: Vec<char> = fold(proposed).chars().collect();
    let b: Vec<char> = fold(existing).chars().collect();
    if a == b {
        return true;
    }
    let allowed = budget(visible_len(proposed).min(visible_len(existing)));
    allowed > 0 && a.len().abs_diff(b.len()) <= allowed && distance(&a, &b) <= allowed
}

/// A name's length for the edit budget: characters after NFKC, spacing
/// dropped (not the folded length: the skeleton turns `m` into `rn`).
fn visible_len(name: &str) -> usize {
    name.chars()
        .take(MAX_COMPARED)
        .nfkc()
        .filter(|c| !is_spacing(*c))
        .count()
}

/// Optimal string alignment distance.
fn distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    let at = |i: usize, j: usize| i * width + j;
    for i in 0..=a.len() {
        d[at(i, 0)] = i;
    }
    for j in 0..=b.len() {
        d[at(0, j)] = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[at(i - 1, j)] + 1)
                .min(d[at(i, j - 1)] + 1)
                .min(d[at(i - 1, j - 1)] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[at(i - 2, j - 2)] + 1);
            }
            d[at(i, j)] = best;
        }
    }
    d[at(a.len(), b.len())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes() {
        for (a, b) in [
            ("Notes", "Notes"),
            ("N0tes", "Notes"),
            ("Nоtes", "Notes"),  // Cyrillic о
            ("Νotes", "Notes"),  // Greek Ν
            ("notes ", "Notes"), // trailing space
            ("NOTES", "Notes"),
            ("Ｎｏｔｅｓ", "Notes"), // full width
            ("No\u{200B}tes", "Notes"),
            ("Note5", "Notes"),
            ("Ntoes", "Notes"),
            ("Note", "Notes"),
            ("Paypal", "PayPaI"),
            ("PayPa1", "Paypal"),
            ("Modem", "Modern"),
            ("Note pad", "Notepad"),
            ("note-pad", "Notepad"),
            ("Calnedar2", "Calendar"),
            ("Clock", "Block"),
        ] {
            assert!(name_looks_like(a, b), "{a:?} should look like {b:?}");
            assert!(name_looks_like(b, a), "{b:?} should look like {a:?}");
        }
    }

    #[test]
    fn different_names() {
        for (a, b) in [
            ("Notes", "Clock"),
            ("Editor", "Edit"),
            ("Map", "Mop"),
            ("Notes", "Notes Pro"),
            ("Calendar", "Calculator"),
            ("Mail", "Maps"),
            ("Text editor", "Photo editor"),
            ("Chess", "Chat"),
        ] {
            assert!(!name_looks_like(a, b), "{a:?} should not look like {b:?}");
            assert!(!name_looks_like(b, a), "{b:?} should not look like {a:?}");
        }
    }

    #[test]
    fn distance_counts_swaps_once() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(distance(&c("ab"), &c("ba")), 1);
        assert_eq!(distance(&c("kitten"), &c("sitting")), 3);
        assert_eq!(distance(&c(""), &c("abc")), 3);
    }

    #[test]
    fn long_hostile_names_are_cut() {
        let a = "a".repeat(100_000);
        let b = "b".repeat(100_000);
        assert!(!name_looks_like(&a, &b));
        assert!(name_looks_like(&a, &a));
    }
}
