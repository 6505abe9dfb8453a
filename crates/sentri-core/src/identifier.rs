//! Identifiers: what a user logs in with (an email, a username, a phone).
//!
//! An identifier is trimmed and put in Unicode NFKC form; that value is kept
//! for display. Uniqueness and lookup use a *key*: the same value lowercased
//! (full Unicode case folding of the NFKC form), so `Alice@Example.com` and
//! `alice@example.com` are one account.
//!
//! ```
//! use sentri_core::identifier::Identifier;
//!
//! let id = Identifier::parse("  Ａlice@Example.com ")?;
//! assert_eq!(id.display(), "Alice@Example.com");
//! assert_eq!(id.key(), "alice@example.com");
//! # Ok::<(), sentri_core::Error>(())
//! ```

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// The longest identifier accepted, in characters (SPEC §4).
pub const MAX_IDENTIFIER_CHARS: usize = 254;

/// A validated identifier: display value and normalised key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    display: String,
    key: String,
}

impl Identifier {
    /// Trim, normalise and validate `raw`.
    ///
    /// # Errors
    /// `VALIDATION_ERROR` when it is empty after trimming, longer than
    /// [`MAX_IDENTIFIER_CHARS`], or contains control characters.
    pub fn parse(raw: &str) -> Result<Self> {
        Self::parse_field("identifier", raw)
    }

    /// As [`Identifier::parse`], naming `field` in the error.
    pub fn parse_field(field: &str, raw: &str) -> Result<Self> {
        // Bound the work before normalising: NFKC can expand a string, but
        // never by more than a small factor; reject absurd inputs early.
        if raw.len() > MAX_IDENTIFIER_CHARS * 18 {
            return Err(Error::validation(field, "must be at most 254 characters"));
        }
        let display: String = raw.trim().nfkc().collect();
        let display = display.trim().to_owned();
        if display.is_empty() {
            return Err(Error::validation(field, "must not be empty"));
        }
        if display.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(Error::validation(field, "must be at most 254 characters"));
        }
        if display.chars().any(char::is_control) {
            return Err(Error::validation(
                field,
                "must not contain control characters",
            ));
        }
        let key: String = display.to_lowercase().nfkc().collect();
        Ok(Self { display, key })
    }

    /// The value for display (trimmed, NFKC).
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The normalised value used for uniqueness and lookup.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Split into `(display, key)`.
    pub fn into_parts(self) -> (String, String) {
        (self.display, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    #[test]
    fn case_and_width_variants_share_one_key() {
        let a = Identifier::parse("Alice@Example.COM").unwrap();
        let b = Identifier::parse(" alice@example.com\t").unwrap();
        let c = Identifier::parse("ａｌｉｃｅ@example.com").unwrap();
        assert_eq!(a.key(), b.key());
        assert_eq!(a.key(), c.key());
        assert_eq!(a.display(), "Alice@Example.COM");
    }

    #[test]
    fn empty_and_whitespace_are_rejected() {
        for raw in ["", "   ", "\u{3000}"] {
            let err = Identifier::parse(raw).unwrap_err();
            assert_eq!(err.code(), ErrorCode::ValidationError, "{raw:?}");
        }
    }

    #[test]
    fn length_limit_is_254_characters() {
        assert!(Identifier::parse(&"a".repeat(254)).is_ok());
        let err = Identifier::parse(&"a".repeat(255)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::ValidationError);
        // Characters, not bytes: 254 two-byte characters are fine.
        assert!(Identifier::parse(&"é".repeat(254)).is_ok());
        assert!(Identifier::parse(&"x".repeat(100_000)).is_err());
    }

    #[test]
    fn control_characters_are_rejected() {
        assert!(Identifier::parse("ali\u{0}ce").is_err());
        assert!(Identifier::parse("ali\nce").is_err());
    }
}
