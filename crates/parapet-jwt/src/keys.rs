//! The verification keys: each pinned to exactly one algorithm, found by `kid`.

use std::collections::HashMap;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use parapet_core::ConfigError;

/// Longest `kid` looked up; a longer one cannot name one of our keys.
pub(crate) const MAX_KID_BYTES: usize = 256;

/// One key and the one algorithm it verifies.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The keys of a guard. A token's `alg` never chooses a key or an algorithm: the `kid`
/// chooses the key, and the token's `alg` must then equal the key's pinned algorithm.
#[derive(Clone, Default)]
pub(crate) struct KeyRing {
    by_id: HashMap<String, KeyEntry>,
    /// The key used for every token when the ring holds one key and it has no id.
    only: Option<KeyEntry>,
}

impl KeyRing {
    /// Adds a key; `id` is the `kid` it answers to.
    pub(crate) fn add(
        &mut self,
        id: Option<String>,
        alg: Algorithm,
        key: DecodingKey,
    ) -> Result<(), ConfigError> {
        if key.family() != alg.family() {
            return Err(ConfigError(format!(
                "a {:?} key cannot verify {alg:?}",
                key.family()
            )));
        }
        if key.family() == AlgorithmFamily::Hmac {
            let min = match alg {
                Algorithm::HS384 => 48,
                Algorithm::HS512 => 64,
                _ => 32,
            };
            // RFC 7518 §3.2: a key at least as long as the hash output MUST be used.
            if key.try_get_as_bytes().map_or(0, <[u8]>::len) < min {
                return Err(ConfigError(format!(
                    "an {alg:?} secret must be at least {min} bytes (RFC 7518 §3.2)"
                )));
            }
        }
        let entry = KeyEntry { alg, key };
        match id {
            Some(id) => {
                if id.is_empty() || id.len() > MAX_KID_BYTES {
                    return Err(ConfigError(format!(
                        "a key id must be 1 to {MAX_KID_BYTES} bytes"
                    )));
                }
                if self.by_id.insert(id.clone(), entry).is_some() {
                    return Err(ConfigError(format!("two keys have the id {id:?}")));
                }
            }
            None if self.only.is_some() => {
                return Err(ConfigError(
                    "only one key may go without an id; give the others one".into(),
                ));
            }
            None => self.only = Some(entry),
        }
        if self.only.is_some() && !self.by_id.is_empty() {
            return Err(ConfigError(
                "a key without an id cannot be mixed with keys that have one".into(),
            ));
        }
        Ok(())
    }

    /// The keys of a JWKS document (RFC 7517) that can verify signatures: `use` absent or
    /// `sig`, an asymmetric key type (symmetric `oct` keys are refused: a published
    /// document must not hold a secret), and the algorithm of `alg`, or the one its key
    /// type implies (RSA → RS256, P-256 → ES256, P-384 → ES384, Ed25519 → EdDSA). Keys
    /// without a `kid` are skipped unless the document holds one key.
    pub(crate) fn from_jwks(set: &JwkSet) -> Result<Self, ConfigError> {
        let mut ring = Self::default();
        let single = set.keys.len() == 1;
        for jwk in &set.keys {
            let Some(alg) = jwk_algorithm(jwk) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            match &jwk.common.key_id {
                // A duplicate kid in a document: the first wins.
                Some(kid)
                    if !kid.is_empty()
                        && kid.len() <= MAX_KID_BYTES
                        && !ring.by_id.contains_key(kid) =>
                {
                    ring.add(Some(kid.clone()), alg, key)?;
                }
                None if single => ring.add(None, alg, key)?,
                _ => {}
            }
        }
        Ok(ring)
    }

    /// The key for a token whose header names `kid`.
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<&KeyEntry> {
        match (&self.only, kid) {
            (Some(only), _) => Some(only),
            (None, Some(kid)) => self.by_id.get(kid),
            (None, None) => None,
        }
    }

    /// True when the ring holds a key for `kid`.
    #[cfg_attr(not(feature = "jwks-fetch"), allow(dead_code))]
    pub(crate) fn knows(&self, kid: Option<&str>) -> bool {
        self.find(kid).is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.only.is_none() && self.by_id.is_empty()
    }
}

/// The one algorithm a JWK verifies, or `None` when it is not a signature key we accept.
fn jwk_algorithm(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        Some(declared) => Algorithm::try_from(declared).ok()?,
        None => implied,
    };
    (alg.family() == implied.family() && alg.family() != AlgorithmFamily::Hmac).then_some(alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_hmac_secrets_and_mismatched_families_are_refused() {
        let mut ring = KeyRing::default();
        assert!(
            ring.add(None, Algorithm::HS256, DecodingKey::from_secret(b"short"))
                .is_err()
        );
        assert!(
            ring.add(None, Algorithm::RS256, DecodingKey::from_secret(&[7; 32]))
                .is_err()
        );
        assert!(
            ring.add(None, Algorithm::HS512, DecodingKey::from_secret(&[7; 32]))
                .is_err()
        );
        ring.add(None, Algorithm::HS256, DecodingKey::from_secret(&[7; 32]))
            .unwrap();
        // One id-less key answers every kid.
        assert!(ring.knows(Some("anything")) && ring.knows(None));
        assert!(
            ring.add(None, Algorithm::HS256, DecodingKey::from_secret(&[8; 32]))
                .is_err()
        );
    }

    #[test]
    fn keys_with_ids_are_found_by_id_only() {
        let mut ring = KeyRing::default();
        ring.add(
            Some("a".into()),
            Algorithm::HS256,
            DecodingKey::from_secret(&[1; 32]),
        )
        .unwrap();
        assert!(ring.knows(Some("a")));
        assert!(!ring.knows(Some("b")) && !ring.knows(None));
        assert!(
            ring.add(
                Some("a".into()),
                Algorithm::HS256,
                DecodingKey::from_secret(&[2; 32])
            )
            .is_err()
        );
    }
}
