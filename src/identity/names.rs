//! What makes two usernames or two email addresses "the same" (ID-1, ID-2 of
//! docs/security.md).
//!
//! - A username is stored in NFKC (fullwidth `ａｄｍｉｎ` is `admin`), without control, format or
//!   other invisible characters (zero-width space, joiners, bidi marks, variation selectors,
//!   Hangul fillers) and without whitespace other than the ASCII space.
//! - Two usernames collide when their *skeletons* match: the UTS #39 confusable skeleton
//!   (crate `unicode-security`, the tables rustc uses for its confusable-identifier lint) of the
//!   lowercased NFKC form, so `dеmo` with a Cyrillic `е`, `DEMO` and `demo` are one name.
//! - Self-chosen usernames (sign-up, profile forms) must also pass the General Security
//!   Profile of UTS #39: every character is "Allowed" for identifiers, or one of `._@+-`
//!   (Django's, hence authentik's, username punctuation).
//! - An email address's key is its NFKC form, trimmed and lowercased (the whole address:
//!   no mail provider hands out addresses that differ only in case).

use unicode_normalization::UnicodeNormalization;
use unicode_security::GeneralSecurityProfile;

/// Punctuation a self-chosen username may contain besides identifier characters.
const USERNAME_PUNCTUATION: &str = "._@+-";

/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 150;

/// Default_Ignorable_Code_Point (Unicode DerivedCoreProperties) plus the interlinear
/// annotation controls and the Arabic/Syriac prepended format characters: nothing a reader
/// can see.
const INVISIBLE: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{06DD}', '\u{06DD}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08E2}', '\u{08E2}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFFB}'),
    ('\u{110BD}', '\u{110BD}'),
    ('\u{110CD}', '\u{110CD}'),
    ('\u{13430}', '\u{1343F}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

/// Whether `c` shows nothing (or moves text around) when rendered.
pub fn is_invisible(c: char) -> bool {
    c.is_control() || (c.is_whitespace() && c != ' ') || INVISIBLE.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// Why a username was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, too long, or with surrounding spaces.
    #[error("a username has 1-{MAX_USERNAME_CHARS} characters and no surrounding spaces")]
    Shape,
    /// An invisible, control or formatting character.
    #[error("a username cannot contain invisible or control characters")]
    Invisible,
    /// A character outside the identifier profile (self-chosen names only).
    #[error("a username may contain letters, digits and . _ @ + - only")]
    Character,
}

/// The stored form of a username: NFKC, checked for shape and invisible characters.
pub fn normalize_username(raw: &str) -> Result<String, NameError> {
    let n: String = raw.nfkc().collect();
    if n.is_empty() || n.chars().count() > MAX_USERNAME_CHARS || n.trim() != n {
        return Err(NameError::Shape);
    }
    if n.chars().any(is_invisible) {
        return Err(NameError::Invisible);
    }
    Ok(n)
}

/// [`normalize_username`], then the UTS #39 identifier profile: what sign-up accepts.
pub fn normalize_chosen_username(raw: &str) -> Result<String, NameError> {
    let n = normalize_username(raw)?;
    if !n
        .chars()
        .all(|c| c.identifier_allowed() || USERNAME_PUNCTUATION.contains(c))
    {
        return Err(NameError::Character);
    }
    Ok(n)
}

/// The key two usernames collide on: the UTS #39 skeleton of the lowercased NFKC form (then
/// lowercased again, since a prototype may be uppercase, e.g. `ǀ` → `l`, `0` → `O`).
pub fn username_skeleton(name: &str) -> String {
    let folded: String = name.nfkc().collect::<String>().to_lowercase();
    let skel: String = unicode_security::skeleton(&folded).collect();
    skel.to_lowercase()
}

/// Reserved usernames (`identity.reserved_usernames`), matched by skeleton: `ａｄｍｉｎ`,
/// `Admin` and `аdmin` (Cyrillic `а`) are all `admin`.
#[derive(Debug, Clone, Default)]
pub struct ReservedNames {
    skeletons: std::collections::HashSet<String>,
}

impl ReservedNames {
    /// The set of `names`.
    pub fn new(names: &[String]) -> Self {
        Self {
            skeletons: names.iter().map(|n| username_skeleton(n)).collect(),
        }
    }

    /// Whether `name` is reserved or looks like a reserved name.
    pub fn contains(&self, name: &str) -> bool {
        self.skeletons.contains(&username_skeleton(name))
    }
}

/// The key two email addresses collide on ("" for no address).
pub fn email_key(email: &str) -> String {
    email.trim().nfkc().collect::<String>().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_share_a_skeleton() {
        let demo = username_skeleton("demo");
        for v in ["DEMO", "Demo", "ｄｅｍｏ", "dеmo", "dеmо", "ԁemo"] {
            assert_eq!(username_skeleton(v), demo, "{v:?}");
        }
        assert_eq!(username_skeleton("admin"), username_skeleton("аdmіn"));
        assert_eq!(username_skeleton("paypal"), username_skeleton("paypa1"));
        assert_ne!(username_skeleton("alice"), username_skeleton("bob"));
    }

    #[test]
    fn invisible_characters_are_refused() {
        for v in [
            "de\u{200B}mo",
            "demo\u{200D}",
            "\u{FEFF}demo",
            "de\u{2060}mo",
            "de\u{202E}mo",
            "demo\u{FE0F}",
            "de\u{00AD}mo",
            "de\u{3164}mo",
            "de\tmo",
            "de\u{00A0}mo\u{2028}",
        ] {
            assert!(normalize_username(v).is_err(), "{v:?}");
        }
        assert_eq!(normalize_username("ｄｅｍｏ").unwrap(), "demo");
        assert_eq!(normalize_username("zoë").unwrap(), "zoë");
        assert_eq!(normalize_username(" demo"), Err(NameError::Shape));
    }

    #[test]
    fn chosen_names_follow_the_identifier_profile() {
        for ok in ["alice", "bob.smith", "a_b-c+d@e", "zoë", "Ünïcode", "名前"] {
            assert!(normalize_chosen_username(ok).is_ok(), "{ok:?}");
        }
        for bad in ["a b", "a/b", "☃", "a\u{E000}", "<script>"] {
            assert_eq!(normalize_chosen_username(bad), Err(NameError::Character), "{bad:?}");
        }
    }

    #[test]
    fn reserved_names_match_their_look_alikes() {
        let r = ReservedNames::new(&["admin".into(), "root".into()]);
        for v in ["admin", "ADMIN", "ａｄｍｉｎ", "аdmin", "rооt", "Root"] {
            assert!(r.contains(v), "{v:?}");
        }
        assert!(!r.contains("alice"));
        assert!(!r.contains("admins"));
    }

    #[test]
    fn email_keys_ignore_case_and_width() {
        assert_eq!(email_key("Alice@Example.TEST"), email_key("alice@example.test"));
        assert_eq!(email_key("ａlice@example.test"), "alice@example.test");
        assert_eq!(email_key(""), "");
    }
}
