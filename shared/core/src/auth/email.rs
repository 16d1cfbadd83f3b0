//! Email addresses, normalized at the edge: trimmed, NFKC-normalized (so full-width and
//! other compatibility forms become their plain letters) and lower-cased, so that one
//! mailbox is one account however its owner types it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::text::is_format_char;

/// Maximum length of an address (RFC 5321's path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;

#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidEmail(pub String);

impl Email {
    /// Normalizes and checks an address typed by a person.
    pub fn parse(text: &str) -> Result<Email, InvalidEmail> {
        let normalized: String = text.trim().nfkc().collect::<String>().to_lowercase();
        let display: String = text.trim().chars().take(80).collect();

        if normalized.is_empty() {
            return Err(InvalidEmail("The email address is missing.".into()));
        }
        if normalized.len() > MAX_EMAIL_LEN {
            return Err(InvalidEmail(format!(
                "The email address is longer than {MAX_EMAIL_LEN} characters."
            )));
        }
        if normalized
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_format_char(c))
        {
            return Err(InvalidEmail(format!(
                "{display:?} is not a valid email address: it contains spaces, control characters or invisible formatting characters."
            )));
        }

        let Some((local, domain)) = normalized.rsplit_once('@') else {
            return Err(InvalidEmail(format!(
                "{display:?} is not a valid email address: it has no '@'."
            )));
        };
        let labels_valid = domain.split('.').count() >= 2
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || local.contains('@') || !labels_valid {
            return Err(InvalidEmail(format!(
                "{display:?} is not a valid email address; expected a form like name@example.com."
            )));
        }
        Ok(Email(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Email::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalized() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").expect("valid");
        assert_eq!(email.as_str(), "ada.lovelace@example.com");
        assert_eq!(
            Email::parse("ÉLODIE@exemple.fr").expect("valid").as_str(),
            "élodie@exemple.fr"
        );
    }

    #[test]
    fn lookalike_addresses_normalize_or_fail() {
        assert_eq!(
            Email::parse("ａｄａ@example.com").expect("full-width").as_str(),
            "ada@example.com"
        );
        assert!(Email::parse("ada\u{200B}@example.com").is_err(), "zero-width space");
        assert!(
            Email::parse("\u{202E}ada@example.com").is_err(),
            "right-to-left override"
        );
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for text in [
            "",
            "plain",
            "a@b",
            "@example.com",
            "a b@example.com",
            "a@-x.com",
            "a@x..com",
            "a@@x.com",
        ] {
            assert!(Email::parse(text).is_err(), "{text:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
