//! Matching typed text against option labels, ignoring case, accents, spacing and the
//! punctuation around the words ("  yes! " answers "Yes", "cafe" answers "Café").
//!
//! Accents are removed by Unicode compatibility decomposition (NFKD, from the
//! `unicode-normalization` crate) and dropping the combining marks; case by Unicode lowercase
//! mapping. Letters of other scripts stay as they are: nothing is transliterated.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// `text` as compared with option labels.
pub(crate) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
    {
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches(|c: char| c.is_ascii_punctuation() || c.is_whitespace());
    if trimmed.len() == out.len() {
        out
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_accents_spacing_and_end_punctuation_do_not_matter() {
        for (typed, label) in [
            ("yes", "Yes"),
            ("  YES!  ", "Yes"),
            ("cafe", "Café"),
            ("CAFÉ", "café"),
            ("too   fast", "Too fast"),
            ("ÜBER", "uber"),
            ("déjà vu", "Deja vu"),
            ("ﬁne", "fine"),
        ] {
            assert_eq!(normalize(typed), normalize(label), "{typed:?} vs {label:?}");
        }
        assert_ne!(normalize("yes please"), normalize("Yes"));
        assert_ne!(normalize("no"), normalize("now"));
        assert_eq!(
            normalize("Да"),
            "да",
            "other scripts are kept, not transliterated"
        );
        assert_eq!(normalize("?!"), "");
    }
}
