//! The session key ring: which AES-256-GCM keys can seal and open session bodies.
//!
//! Keys come from one secret string (`SESSION_KEYS` in the worker's environment):
//! `"kid1:BASE64,kid2:BASE64"`. The first entry is the *current* key, the only one
//! that seals; the others can still open sessions sealed earlier. Rotating is
//! therefore "prepend a new key, deploy; later drop the old one": sessions move onto
//! the new key as they are updated (every update reseals with the current key).
//!
//! Error messages never contain key material — not even a fragment of a malformed
//! base64 string — because configuration errors end up in logs.

use aes_gcm::aes::cipher::BlockEncrypt;
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine as _;

use crate::{Error, Result};

/// Longest key id: it is stored in every sealed body, so keep it short.
pub const MAX_KID_LEN: usize = 32;

struct Key {
    kid: Box<str>,
    aead: Aes256Gcm,
    /// The raw block cipher under the same key, used only to derive per-instance
    /// secrets ([`KeyRing::derive`]), never to encrypt session data.
    block: Aes256,
}

/// Parsed, validated session keys. `Debug` shows key ids only.
pub struct KeyRing {
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("kids", &self.kids()).finish()
    }
}

/// Whether `kid` is a usable key id: 1–32 of `[A-Za-z0-9_-]`.
pub fn valid_kid(kid: &[u8]) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

impl KeyRing {
    /// Parses `"kid1:BASE64,kid2:BASE64"` (whitespace around entries and parts is
    /// ignored). Each key is exactly 32 bytes once decoded with standard base64.
    ///
    /// ```
    /// use edgesync::session::KeyRing;
    /// let k = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    /// let ring = KeyRing::parse(&format!("new:{k}, old:{k}")).unwrap();
    /// assert_eq!(ring.current_kid(), "new");
    /// assert_eq!(ring.kids(), vec!["new", "old"]);
    /// let err = KeyRing::parse("new:c2VjcmV0").unwrap_err();
    /// assert_eq!(err.code(), "CONFIG_ERROR");
    /// assert!(!err.to_string().contains("c2VjcmV0"));
    /// ```
    pub fn parse(spec: &str) -> Result<KeyRing> {
        let mut keys: Vec<Key> = Vec::new();
        for (i, entry) in spec.split(',').enumerate() {
            let n = i + 1;
            let entry = entry.trim();
            let Some((kid, b64)) = entry.split_once(':') else {
                return Err(cfg(format!("session key entry {n} is not of the form kid:BASE64")));
            };
            let (kid, b64) = (kid.trim(), b64.trim());
            if !valid_kid(kid.as_bytes()) {
                // The id is not echoed: a malformed entry may be a pasted key.
                return Err(cfg(format!(
                    "session key entry {n}: the key id must be 1-{MAX_KID_LEN} characters of A-Z a-z 0-9 _ -"
                )));
            }
            if keys.iter().any(|k| &*k.kid == kid) {
                return Err(cfg(format!("session key id {kid:?} appears twice")));
            }
            let mut raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| cfg(format!("session key {kid:?} is not valid standard base64")))?;
            if raw.len() != 32 {
                let len = raw.len();
                raw.fill(0);
                return Err(cfg(format!("session key {kid:?} must decode to 32 bytes, not {len}")));
            }
            let key = Key {
                kid: kid.into(),
                aead: Aes256Gcm::new_from_slice(&raw).map_err(|_| cfg("bad key".into()))?,
                block: Aes256::new_from_slice(&raw).map_err(|_| cfg("bad key".into()))?,
            };
            // Best effort only (the ciphers keep their own key schedules).
            raw.fill(0);
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(cfg("no session keys".into()));
        }
        Ok(KeyRing { keys })
    }

    /// The id of the key that seals.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Every key id, current first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| &*k.kid).collect()
    }

    pub(crate) fn current(&self) -> (&str, &Aes256Gcm) {
        (&self.keys[0].kid, &self.keys[0].aead)
    }

    pub(crate) fn find(&self, kid: &[u8]) -> Option<&Aes256Gcm> {
        self.keys.iter().find(|k| k.kid.as_bytes() == kid).map(|k| &k.aead)
    }

    /// A 16-byte secret derived from `seed` under the current key (one AES block).
    /// Used to key the cache's hash function so that whoever can read nonces (which
    /// reveal the seed) still cannot predict hash collisions.
    pub(crate) fn derive(&self, seed: [u8; 16]) -> [u8; 16] {
        let mut block = seed.into();
        self.keys[0].block.encrypt_block(&mut block);
        block.into()
    }
}

fn cfg(msg: String) -> Error {
    Error::Config(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn parses_with_whitespace_and_order() {
        let spec = format!(" a : {} ,\n b_2-x:{} ", b64(&[1; 32]), b64(&[2; 32]));
        let ring = KeyRing::parse(&spec).unwrap();
        assert_eq!(ring.current_kid(), "a");
        assert_eq!(ring.kids(), ["a", "b_2-x"]);
        assert!(ring.find(b"b_2-x").is_some());
        assert!(ring.find(b"c").is_none());
        assert_eq!(format!("{ring:?}"), "KeyRing { kids: [\"a\", \"b_2-x\"] }");
    }

    #[test]
    fn rejects_bad_specs_without_leaking() {
        let secret = b64(&[7; 31]);
        let long = b64(&[9; 33]);
        let cases = [
            String::new(),
            " , ".into(),
            format!("a:{secret}"),
            format!("a:{long}"),
            format!("a:{}!", &b64(&[7; 32])[..43]),
            secret.clone(),
            format!("{}:{}", "k".repeat(33), b64(&[7; 32])),
            format!("a b:{}", b64(&[7; 32])),
            format!(":{}", b64(&[7; 32])),
            format!("a:{0},a:{0}", b64(&[7; 32])),
            format!("a:{},", b64(&[7; 32])),
        ];
        for spec in cases {
            let err = KeyRing::parse(&spec).unwrap_err();
            assert_eq!(err.code(), "CONFIG_ERROR", "{spec}");
            let msg = err.to_string();
            for part in spec.split([',', ':']) {
                if part.trim().len() > 8 {
                    assert!(!msg.contains(part.trim()), "{msg} leaks {part}");
                }
            }
        }
    }

    #[test]
    fn derive_depends_on_key_and_seed() {
        let r1 = KeyRing::parse(&format!("a:{}", b64(&[1; 32]))).unwrap();
        let r2 = KeyRing::parse(&format!("a:{}", b64(&[2; 32]))).unwrap();
        assert_ne!(r1.derive([0; 16]), r2.derive([0; 16]));
        assert_ne!(r1.derive([0; 16]), r1.derive([1; 16]));
        assert_eq!(r1.derive([5; 16]), r1.derive([5; 16]));
    }
}
