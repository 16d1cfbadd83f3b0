//! Encryption of connection credentials at rest: AES-256-GCM under a key derived from the
//! master key (HMAC-SHA256 of a fixed label), with the owning record's id as associated
//! data, so a ciphertext copied onto another record does not decrypt.
//!
//! Sealed values read `v1.<base64url(nonce ‖ ciphertext ‖ tag)>`; the version prefix lets a
//! later key or algorithm change coexist with stored values.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as HmacKeyInit, Mac};
use rand::RngExt;
use sha2::Sha256;

use crate::ports::SecretString;

/// Label mixed into the key derivation, so the master key is never used directly.
const KEY_LABEL: &[u8] = b"mako/connection-credentials/v1";
const PREFIX: &str = "v1.";
const NONCE_BYTES: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the sealed value is malformed")]
    Malformed,
    /// Wrong key, wrong record, or tampered data: GCM cannot tell these apart.
    #[error("the sealed value does not decrypt with this key and record")]
    Rejected,
}

/// Seals and opens credentials.
#[derive(Clone)]
pub struct CredentialCipher {
    cipher: Aes256Gcm,
}

impl CredentialCipher {
    /// Derives the credential key from the master key.
    pub fn from_master_key(master: &SecretString) -> CredentialCipher {
        let mut mac = <Hmac<Sha256> as HmacKeyInit>::new_from_slice(master.expose().as_bytes())
            .expect("HMAC takes keys of any length");
        mac.update(KEY_LABEL);
        let key = mac.finalize().into_bytes();
        CredentialCipher {
            cipher: Aes256Gcm::new(&key),
        }
    }

    /// Encrypts `plaintext` for the record named by `record_id`.
    pub fn seal(&self, plaintext: &[u8], record_id: &str) -> String {
        let mut nonce_bytes = [0u8; NONCE_BYTES];
        rand::rng().fill(&mut nonce_bytes);
        let nonce = Nonce::from(nonce_bytes);
        // Encryption only fails for messages over 64 GiB, far beyond any credential.
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: record_id.as_bytes(),
                },
            )
            .unwrap_or_default();

        let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Decrypts a value sealed for `record_id`.
    pub fn open(&self, sealed: &str, record_id: &str) -> Result<Vec<u8>, CryptoError> {
        let encoded = sealed.strip_prefix(PREFIX).ok_or(CryptoError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce_bytes, ciphertext) = bytes.split_at(NONCE_BYTES);
        let nonce_array: [u8; NONCE_BYTES] = nonce_bytes.try_into().map_err(|_| CryptoError::Malformed)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce_array),
                Payload {
                    msg: ciphertext,
                    aad: record_id.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(master: &str) -> CredentialCipher {
        CredentialCipher::from_master_key(&SecretString::new(master))
    }

    #[test]
    fn sealed_values_open_for_their_record_only() {
        let cipher = cipher("0123456789abcdef0123456789abcdef");
        let sealed = cipher.seal(b"hunter2", "conn_1");

        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(cipher.open(&sealed, "conn_1").ok(), Some(b"hunter2".to_vec()));
        assert!(matches!(cipher.open(&sealed, "conn_2"), Err(CryptoError::Rejected)));
    }

    #[test]
    fn another_master_key_cannot_open() {
        let sealed = cipher("first key").seal(b"secret", "conn_1");
        assert!(matches!(
            cipher("second key").open(&sealed, "conn_1"),
            Err(CryptoError::Rejected)
        ));
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let cipher = cipher("key");
        assert_ne!(cipher.seal(b"same", "r"), cipher.seal(b"same", "r"));
    }

    #[test]
    fn tampering_is_detected() {
        let cipher = cipher("key");
        let sealed = cipher.seal(b"secret", "r");
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed[3..]).expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("v1.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(matches!(cipher.open(&tampered, "r"), Err(CryptoError::Rejected)));
        assert!(matches!(cipher.open("v2.abc", "r"), Err(CryptoError::Malformed)));
    }
}
