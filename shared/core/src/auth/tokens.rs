//! Random tokens: session cookies, CSRF tokens, OAuth states and PKCE verifiers, and API keys.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sha2::{Digest, Sha256};

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "revops_";

/// Random bytes in an API key.
const API_KEY_BYTES: usize = 32;

/// Characters of a key shown in listings (the prefix and the first few random characters).
const API_KEY_DISPLAY_CHARS: usize = 12;

/// Returns `bytes` random bytes as base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill(&mut buffer[..]);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// Hex SHA-256 of a token, the form tokens are stored and looked up in.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// PKCE S256 code challenge of a verifier (RFC 7636): base64url(SHA-256(verifier)).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A freshly generated API key: the full key (shown once), its display prefix and its hash.
pub struct NewApiKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

/// Generates `revops_` followed by 32 random bytes in base64url (43 characters).
pub fn generate_api_key() -> NewApiKey {
    let key = format!("{API_KEY_PREFIX}{}", random_token(API_KEY_BYTES));
    NewApiKey {
        prefix: key.chars().take(API_KEY_DISPLAY_CHARS).collect(),
        hash: sha256_hex(&key),
        key,
    }
}

/// Returns whether `text` has the shape of an API key, before any lookup.
pub fn is_api_key_shaped(text: &str) -> bool {
    text.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_have_the_documented_shape() {
        let generated = generate_api_key();
        assert!(generated.key.starts_with("revops_"));
        assert!(is_api_key_shaped(&generated.key));
        assert_eq!(generated.prefix.len(), 12);
        assert_eq!(generated.hash, sha256_hex(&generated.key));
        assert_ne!(generate_api_key().key, generated.key);
    }

    #[test]
    fn malformed_keys_are_not_key_shaped() {
        for text in [
            "",
            "revops_",
            "revops_short",
            "sk_live_abc",
            &format!("revops_{}", "a".repeat(44)),
        ] {
            assert!(!is_api_key_shaped(text), "{text}");
        }
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_example() {
        // Appendix B of RFC 7636.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
