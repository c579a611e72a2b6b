//! The format of payloads in Redis: a small header, then the value,
//! lz4-compressed above a threshold and AES-256-GCM-encrypted when a key is
//! configured.
//!
//! ```text
//! byte 0      version (1)
//! byte 1      flags: bit 0 = lz4, bit 1 = AES-256-GCM
//! if encrypted:
//!   byte 2    key id length n
//!   3..3+n    key id (ASCII)
//!   next 12   nonce
//! rest        payload (ciphertext with its 16-byte tag when encrypted)
//! ```
//!
//! Compression happens before encryption (ciphertext does not compress). The
//! associated data of the AEAD is the cache key plus the header, so a payload
//! copied under another key, or with a forged header, fails to decrypt.

use std::borrow::Cow;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};

use crate::error::CacheError;
use crate::keyring::Keyring;

const VERSION: u8 = 1;
const FLAG_LZ4: u8 = 0b01;
const FLAG_AES: u8 = 0b10;
/// Largest decompressed size accepted, so a corrupt length can't make us
/// allocate gigabytes.
const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;

/// Encodes and decodes payloads for Redis. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Codec {
    compress_threshold: usize,
    keyring: Option<Keyring>,
}

impl Codec {
    /// A codec that compresses payloads longer than `compress_threshold` bytes
    /// and encrypts with `keyring` when given.
    pub fn new(compress_threshold: usize, keyring: Option<Keyring>) -> Self {
        Self {
            compress_threshold,
            keyring,
        }
    }

    /// Whether payloads are encrypted.
    pub fn encrypts(&self) -> bool {
        self.keyring.is_some()
    }

    /// Encodes `plain` (the serialised value) stored under `key`.
    ///
    /// # Errors
    /// [`CacheError::Crypto`] if encryption fails.
    pub fn encode(&self, key: &str, plain: &[u8]) -> Result<Vec<u8>, CacheError> {
        let compress = plain.len() > self.compress_threshold;
        let body: Cow<'_, [u8]> = if compress {
            lz4_flex::compress_prepend_size(plain).into()
        } else {
            plain.into()
        };
        let mut flags = if compress { FLAG_LZ4 } else { 0 };
        match &self.keyring {
            None => {
                let mut out = Vec::with_capacity(2 + body.len());
                out.push(VERSION);
                out.push(flags);
                out.extend_from_slice(&body);
                Ok(out)
            }
            Some(ring) => {
                flags |= FLAG_AES;
                let k = ring.current();
                let id = k.id().as_bytes();
                let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
                let mut out = Vec::with_capacity(3 + id.len() + 12 + body.len() + 16);
                out.push(VERSION);
                out.push(flags);
                // Key ids are validated to be 1..=255 bytes long.
                out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(id);
                out.extend_from_slice(&nonce);
                let aad = aad(key, &out);
                let cipher = Aes256Gcm::new(k.bytes().into());
                let ct = cipher
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: &body,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| CacheError::Crypto("encryption failed".into()))?;
                out.extend_from_slice(&ct);
                Ok(out)
            }
        }
    }

    /// Decodes a payload read from under `key` into the serialised value.
    ///
    /// # Errors
    /// [`CacheError::Decode`] for a malformed header or body,
    /// [`CacheError::Crypto`] for an unknown key id, a missing key, or a
    /// payload that fails authentication. A plaintext payload is refused when
    /// a keyring is configured (it was not written by this configuration).
    pub fn decode(&self, key: &str, bytes: &[u8]) -> Result<Vec<u8>, CacheError> {
        let [version, flags, rest @ ..] = bytes else {
            return Err(CacheError::Decode("payload shorter than its header"));
        };
        if *version != VERSION {
            return Err(CacheError::Decode("unknown payload version"));
        }
        let body: Cow<'_, [u8]> = if flags & FLAG_AES != 0 {
            let Some(ring) = &self.keyring else {
                return Err(CacheError::Crypto(
                    "payload is encrypted but no key is configured".into(),
                ));
            };
            let [id_len, rest @ ..] = rest else {
                return Err(CacheError::Decode("missing key id"));
            };
            let id_len = usize::from(*id_len);
            if rest.len() < id_len + 12 + 16 {
                return Err(CacheError::Decode("encrypted payload too short"));
            }
            let (id, rest) = rest.split_at(id_len);
            let (nonce, ct) = rest.split_at(12);
            let id = std::str::from_utf8(id).map_err(|_| CacheError::Decode("bad key id"))?;
            let Some(k) = ring.key(id) else {
                return Err(CacheError::Crypto(format!("unknown key id {id:?}")));
            };
            let header_len = 3 + id_len + 12;
            let aad = aad(key, &bytes[..header_len]);
            let cipher = Aes256Gcm::new(k.bytes().into());
            cipher
                .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| CacheError::Crypto("authentication failed".into()))?
                .into()
        } else {
            if self.keyring.is_some() {
                return Err(CacheError::Crypto(
                    "plaintext payload refused: encryption is configured".into(),
                ));
            }
            rest.into()
        };
        if flags & FLAG_LZ4 != 0 {
            // The only error is a body shorter than the 4-byte size prefix.
            let (len, compressed) = lz4_flex::block::uncompressed_size(&body)
                .map_err(|_| CacheError::Decode("compressed payload too short"))?;
            if len > MAX_DECOMPRESSED {
                return Err(CacheError::Decode("decompressed size too large"));
            }
            lz4_flex::block::decompress(compressed, len)
                .map_err(|_| CacheError::Decode("lz4 decompression failed"))
        } else {
            Ok(body.into_owned())
        }
    }
}

fn aad(key: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(key.len() + 1 + header.len());
    aad.extend_from_slice(key.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

/// Whether the payload is compressed (for tests and tools).
pub fn is_compressed(bytes: &[u8]) -> bool {
    bytes.get(1).is_some_and(|f| f & FLAG_LZ4 != 0)
}

/// Whether the payload is encrypted (for tests and tools).
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.get(1).is_some_and(|f| f & FLAG_AES != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring::EncryptionKey;

    fn ring(id: &str, b: u8) -> Keyring {
        Keyring::new(EncryptionKey::new(id, [b; 32]).unwrap(), [])
    }

    #[test]
    fn small_plain_payload_round_trips_uncompressed() {
        let c = Codec::new(1024, None);
        let enc = c.encode("k", b"{\"a\":1}").unwrap();
        assert!(!is_compressed(&enc) && !is_encrypted(&enc));
        assert_eq!(c.decode("k", &enc).unwrap(), b"{\"a\":1}");
    }

    #[test]
    fn large_payload_is_compressed_and_flagged() {
        let c = Codec::new(1024, None);
        let plain = "allergy ".repeat(500).into_bytes();
        let enc = c.encode("k", &plain).unwrap();
        assert!(is_compressed(&enc));
        assert!(enc.len() < plain.len() / 4);
        assert_eq!(c.decode("k", &enc).unwrap(), plain);
    }

    #[test]
    fn encrypted_payload_hides_plaintext_and_round_trips() {
        let c = Codec::new(16, Some(ring("k1", 1)));
        let plain = br#"{"name":"Peanut","severity":"LIFE_THREATENING"}"#.repeat(3);
        let enc = c.encode("student:1:allergies", &plain).unwrap();
        assert!(is_encrypted(&enc) && is_compressed(&enc));
        assert!(!enc.windows(6).any(|w| w == b"Peanut"));
        assert_eq!(c.decode("student:1:allergies", &enc).unwrap(), plain);
    }

    #[test]
    fn payload_moved_to_another_key_or_tampered_fails() {
        let c = Codec::new(1024, Some(ring("k1", 1)));
        let mut enc = c.encode("a", b"secret").unwrap();
        assert!(matches!(c.decode("b", &enc), Err(CacheError::Crypto(_))));
        let last = enc.len() - 1;
        enc[last] ^= 1;
        assert!(matches!(c.decode("a", &enc), Err(CacheError::Crypto(_))));
    }

    #[test]
    fn rotated_key_still_decrypts_old_payloads() {
        let old = Codec::new(1024, Some(ring("old", 1)));
        let enc = old.encode("a", b"v").unwrap();
        let rotated = Codec::new(
            1024,
            Some(Keyring::new(
                EncryptionKey::new("new", [2; 32]).unwrap(),
                [EncryptionKey::new("old", [1; 32]).unwrap()],
            )),
        );
        assert_eq!(rotated.decode("a", &enc).unwrap(), b"v");
        let fresh = rotated.encode("a", b"v").unwrap();
        assert!(matches!(
            old.decode("a", &fresh),
            Err(CacheError::Crypto(_))
        ));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let c = Codec::new(0, Some(ring("k1", 1)));
        for bytes in [
            &[][..],
            &[1],
            &[9, 0],
            &[1, 3, 200, 1],
            &[1, 1, 255, 255, 255, 255],
        ] {
            assert!(c.decode("k", bytes).is_err());
        }
        let p = Codec::new(0, None);
        assert!(p.decode("k", &[1, 1, 255, 255, 255, 127, 0]).is_err());
    }
}
