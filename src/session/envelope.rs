//! The sealed session body: optionally deflated, then AES-256-GCM encrypted.
//!
//! ```text
//! "ESS" | version 2 | flags | kid_len | kid | nonce (12) | ciphertext + tag (16)
//! ```
//!
//! `flags` bit 0 means the plaintext was deflated (raw deflate, miniz_oxide level
//! 6); every other bit must be zero. The associated data is the whole header (magic
//! through nonce) followed by the session id, so moving a blob onto another session
//! id, flipping the compression flag or swapping the key id all fail
//! authentication. The header is self-delimiting, so `header || id` is unambiguous.
//!
//! Opening never trusts a length field to size an allocation: the only buffers are
//! the ciphertext (as long as the input) and the inflated plaintext, which is capped
//! at [`MAX_PLAINTEXT`].

use aes_gcm::aead::{Aead, Payload};

use super::keys::{valid_kid, KeyRing};
use crate::{Error, Result};

pub const MAGIC: &[u8; 3] = b"ESS";
/// 2: the plaintext carries the owner and the sealed idle expiry
/// ([`super::Sessions`]). Version 1 bodies (no owner) are refused.
pub const VERSION: u8 = 2;
/// `flags` bit 0: the plaintext is deflated.
pub const FLAG_DEFLATED: u8 = 1;
/// The largest plaintext [`open`] will inflate to (and [`seal`] will deflate).
pub const MAX_PLAINTEXT: usize = 1 << 20;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Seals `plaintext` for `session_id` under the ring's current key.
///
/// The plaintext is deflated first when it is longer than `compress_threshold`
/// bytes, no longer than [`MAX_PLAINTEXT`], and actually shrinks. `nonce` must never
/// repeat under one key: take it from a [`super::NonceSource`].
///
/// Fails only when the plaintext is beyond what AES-GCM can encrypt (64 GiB).
///
/// ```
/// use edgesync::session::{envelope, KeyRing};
/// let ring = KeyRing::parse("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
/// let blob = envelope::seal(&ring, [1; 12], "sid", b"{\"a\":1}", 1024).unwrap();
/// assert_eq!(&blob[..3], b"ESS");
/// assert_eq!(envelope::open(&ring, "sid", &blob).unwrap(), b"{\"a\":1}");
/// assert_eq!(envelope::open(&ring, "other", &blob).unwrap_err().code(), "SESSION_TAMPERED");
/// ```
pub fn seal(
    ring: &KeyRing,
    nonce: [u8; 12],
    session_id: &str,
    plaintext: &[u8],
    compress_threshold: usize,
) -> Result<Vec<u8>> {
    let (kid, aead) = ring.current();
    let mut flags = 0;
    let deflated;
    let mut body = plaintext;
    if plaintext.len() > compress_threshold && plaintext.len() <= MAX_PLAINTEXT {
        deflated = miniz_oxide::deflate::compress_to_vec(plaintext, 6);
        if deflated.len() < plaintext.len() {
            flags |= FLAG_DEFLATED;
            body = &deflated;
        }
    }
    let mut out = Vec::with_capacity(6 + kid.len() + NONCE_LEN + body.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(flags);
    out.push(kid.len() as u8);
    out.extend_from_slice(kid.as_bytes());
    out.extend_from_slice(&nonce);
    let header_len = out.len();
    let aad = [&out[..], session_id.as_bytes()].concat();
    let ct = aead
        .encrypt(&nonce.into(), Payload { msg: body, aad: &aad })
        .map_err(|_| Error::InvalidArgument("session body too large to seal".into()))?;
    out.truncate(header_len);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Whether a sealed blob says its plaintext was deflated (`None` if it has no
/// valid header). For diagnostics and tests; [`open`] does not need it.
pub fn is_deflated(blob: &[u8]) -> Option<bool> {
    parse_header(blob).ok().map(|h| h.flags & FLAG_DEFLATED != 0)
}

/// The key id a blob is sealed under, if its header is well formed.
pub fn kid_of(blob: &[u8]) -> Option<&str> {
    let h = parse_header(blob).ok()?;
    std::str::from_utf8(h.kid).ok()
}

struct Header<'a> {
    flags: u8,
    kid: &'a [u8],
    nonce: [u8; NONCE_LEN],
    len: usize,
}

fn tampered(why: &str) -> Error {
    Error::SessionTampered(why.into())
}

fn parse_header(b: &[u8]) -> Result<Header<'_>> {
    if b.len() < 6 || &b[..3] != MAGIC {
        return Err(tampered("not a sealed session body"));
    }
    if b[3] == 1 {
        return Err(tampered(
            "sealed in the format before session owners (envelope version 1): create a new session",
        ));
    }
    if b[3] != VERSION {
        return Err(tampered("unsupported sealed body version"));
    }
    let flags = b[4];
    if flags & !FLAG_DEFLATED != 0 {
        return Err(tampered("unknown flags in sealed body"));
    }
    let kid_len = b[5] as usize;
    let len = 6 + kid_len + NONCE_LEN;
    if b.len() < len + TAG_LEN {
        return Err(tampered("truncated sealed body"));
    }
    let kid = &b[6..6 + kid_len];
    if !valid_kid(kid) {
        return Err(tampered("malformed key id in sealed body"));
    }
    let mut nonce = [0; NONCE_LEN];
    nonce.copy_from_slice(&b[6 + kid_len..len]);
    Ok(Header { flags, kid, nonce, len })
}

/// Opens a blob made by [`seal`] for `session_id`.
///
/// Errors: [`Error::SessionKeyUnknown`] when the key id is not in the ring (an old
/// key was dropped too early — or a key-id byte was altered into an unknown one);
/// [`Error::SessionTampered`] for everything else (bad header, truncation, failed
/// authentication, a blob sealed for another id, an inflated size over
/// [`MAX_PLAINTEXT`]).
pub fn open(ring: &KeyRing, session_id: &str, blob: &[u8]) -> Result<Vec<u8>> {
    let h = parse_header(blob)?;
    let Some(aead) = ring.find(h.kid) else {
        return Err(Error::SessionKeyUnknown(format!(
            "sealed under key id {:?}, which is not in the key ring",
            String::from_utf8_lossy(h.kid)
        )));
    };
    let aad = [&blob[..h.len], session_id.as_bytes()].concat();
    let pt = aead
        .decrypt(
            &h.nonce.into(),
            Payload {
                msg: &blob[h.len..],
                aad: &aad,
            },
        )
        .map_err(|_| tampered("authentication failed"))?;
    if h.flags & FLAG_DEFLATED == 0 {
        return Ok(pt);
    }
    miniz_oxide::inflate::decompress_to_vec_with_limit(&pt, MAX_PLAINTEXT)
        .map_err(|_| tampered("sealed body does not inflate within the size limit"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::tests::ring;
    use proptest::prelude::*;

    #[test]
    fn compresses_only_when_it_helps() {
        let r = ring(&[("k", 1)]);
        let text = br#"{"cart":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}"#;
        let small = seal(&r, [0; 12], "s", text, 1024).unwrap();
        assert_eq!(is_deflated(&small), Some(false));
        let big = seal(&r, [0; 12], "s", text, 10).unwrap();
        assert_eq!(is_deflated(&big), Some(true));
        assert!(big.len() < small.len());
        assert_eq!(open(&r, "s", &big).unwrap(), text);
        // Incompressible bytes above the threshold stay raw.
        let noise: Vec<u8> = (0..200u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let raw = seal(&r, [0; 12], "s", &noise, 10).unwrap();
        assert_eq!(is_deflated(&raw), Some(false));
        assert_eq!(open(&r, "s", &raw).unwrap(), noise);
        assert_eq!(kid_of(&raw), Some("k"));
    }

    #[test]
    fn key_errors() {
        let blob = seal(&ring(&[("k1", 1)]), [3; 12], "s", b"x", 0).unwrap();
        let e = open(&ring(&[("k3", 3)]), "s", &blob).unwrap_err();
        assert_eq!(e.code(), "SESSION_KEY_UNKNOWN");
        // Same kid, different key material: authentication fails.
        let e = open(&ring(&[("k1", 9)]), "s", &blob).unwrap_err();
        assert_eq!(e.code(), "SESSION_TAMPERED");
        // The header cannot be rewritten to claim another (known) key.
        let two = ring(&[("k2", 2), ("k1", 1)]);
        let mut moved = blob.clone();
        moved[7] = b'2';
        assert_eq!(open(&two, "s", &moved).unwrap_err().code(), "SESSION_TAMPERED");
        assert_eq!(open(&two, "s", &blob).unwrap(), b"x");
    }

    #[test]
    fn inflate_bomb_is_rejected() {
        // A validly sealed deflate stream that inflates past the cap (sealed by
        // hand, since `seal` never deflates more than MAX_PLAINTEXT).
        let r = ring(&[("k", 1)]);
        let zeros = vec![0u8; MAX_PLAINTEXT + 1];
        let packed = miniz_oxide::deflate::compress_to_vec(&zeros, 6);
        let (kid, aead) = r.current();
        let mut blob = vec![b'E', b'S', b'S', VERSION, FLAG_DEFLATED, kid.len() as u8];
        blob.extend_from_slice(kid.as_bytes());
        blob.extend_from_slice(&[0; 12]);
        let aad = [&blob[..], b"s"].concat();
        let ct = aead
            .encrypt(
                &[0; 12].into(),
                Payload {
                    msg: &packed,
                    aad: &aad,
                },
            )
            .unwrap();
        blob.extend_from_slice(&ct);
        assert_eq!(open(&r, "s", &blob).unwrap_err().code(), "SESSION_TAMPERED");
        // And a large plaintext is sealed raw, so it still opens.
        let sealed = seal(&r, [1; 12], "s", &zeros, 0).unwrap();
        assert_eq!(is_deflated(&sealed), Some(false));
        assert_eq!(open(&r, "s", &sealed).unwrap().len(), zeros.len());
    }

    fn code(e: Error) -> &'static str {
        e.code()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(id in "[ -~]{0,40}", data in proptest::collection::vec(any::<u8>(), 0..3000),
                      repeat in any::<bool>(), threshold in 0usize..4000, nonce in any::<[u8; 12]>()) {
            let r = ring(&[("cur", 5), ("old", 6)]);
            let data = if repeat { data.repeat(3) } else { data };
            let blob = seal(&r, nonce, &id, &data, threshold).unwrap();
            prop_assert_eq!(open(&r, &id, &blob).unwrap(), data.clone());
            let deflated = is_deflated(&blob).unwrap();
            prop_assert!(!deflated || data.len() > threshold);
            let other = format!("{id}x");
            prop_assert_eq!(code(open(&r, &other, &blob).unwrap_err()), "SESSION_TAMPERED");
        }

        #[test]
        fn any_flip_or_truncation_fails(data in proptest::collection::vec(any::<u8>(), 0..300),
                                        pos in any::<prop::sample::Index>(), bit in 0u8..8,
                                        cut in any::<prop::sample::Index>()) {
            let r = ring(&[("cur", 5)]);
            let blob = seal(&r, [7; 12], "sid", &data, 50).unwrap();
            let mut flipped = blob.clone();
            flipped[pos.index(blob.len())] ^= 1 << bit;
            prop_assert!(open(&r, "sid", &flipped).is_err());
            let cut = cut.index(blob.len());
            prop_assert!(open(&r, "sid", &blob[..cut]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), prefix in any::<bool>()) {
            let r = ring(&[("k", 1)]);
            let mut b = if prefix { vec![b'E', b'S', b'S', VERSION, 0, 1, b'k'] } else { vec![] };
            b.extend_from_slice(&bytes);
            prop_assert!(open(&r, "s", &b).is_err());
        }
    }
}
