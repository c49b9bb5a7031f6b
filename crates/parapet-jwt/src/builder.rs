//! Options of a [`JwtLayer`].

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use parapet_core::ConfigError;

use crate::guard::{ClaimCheck, Guard, KeySource, Refusal};
use crate::keys::KeyRing;
use crate::rejection::is_quotable;
use crate::verifier::Rules;
use crate::{JwtLayer, Revocations, TokenSource};

/// Options of [`JwtLayer`]. At least one key (or a JWKS) is required; the rest defaults:
///
/// | option | default |
/// |---|---|
/// | [`token_source`](Self::token_source) | `Authorization: Bearer` |
/// | [`leeway`](Self::leeway) | 60 s (as jsonwebtoken's) |
/// | [`issuer`](Self::issuer), [`audience`](Self::audience) | any issuer; no `aud` allowed |
/// | [`max_token_bytes`](Self::max_token_bytes) | 8 KiB |
/// | [`require_jti`](Self::require_jti) | off |
/// | [`revocations`](Self::revocations) | none |
/// | maximum token age (`now - iat`) | that of the revocations ([`RevocationsBuilder::max_token_age`](crate::RevocationsBuilder::max_token_age), 24 h); none without revocations |
/// | [`realm`](Self::realm) | none: the challenge is `Bearer` (with `error=…` when there is one) |
/// | [`optional`](Self::optional) | off: a request without a token gets 401 |
/// | [`check`](Self::check) | none: your own checks of a verified token |
/// | [`refusal`](Self::refusal) | an RFC 9457 problem document with RFC 6750's `WWW-Authenticate` |
///
/// `exp` and `iat` are always required: `exp` so a token ends, `iat` so user and global
/// revocations can tell old tokens from new.
#[derive(Default)]
pub struct JwtLayerBuilder {
    ring: KeyRing,
    error: Option<ConfigError>,
    #[cfg(feature = "jwks-fetch")]
    jwks: Option<crate::jwks::JwksOptions>,
    issuers: Vec<String>,
    audiences: Vec<String>,
    leeway: Option<Duration>,
    max_token_bytes: Option<usize>,
    source: TokenSource,
    realm: Option<String>,
    revocations: Option<Revocations>,
    optional: bool,
    require_jti: bool,
    checks: Vec<ClaimCheck>,
    refusal: Option<Refusal>,
}

impl JwtLayerBuilder {
    fn fail(&mut self, error: ConfigError) {
        self.error.get_or_insert(error);
    }

    /// Verifies HS256 tokens with `secret` (at least 32 bytes, RFC 7518 §3.2).
    pub fn hs256(self, secret: impl AsRef<[u8]>) -> Self {
        self.key(Algorithm::HS256, DecodingKey::from_secret(secret.as_ref()))
    }

    /// Verifies tokens with `key`, for `algorithm` only. Build keys with jsonwebtoken's
    /// [`DecodingKey`] (`from_rsa_pem`, `from_ec_pem`, `from_ed_pem`, `from_secret`, …). A
    /// key without an id is used for every token and must be the only key.
    pub fn key(mut self, algorithm: Algorithm, key: DecodingKey) -> Self {
        if let Err(e) = self.ring.add(None, algorithm, key) {
            self.fail(e);
        }
        self
    }

    /// Verifies tokens whose header names `kid`, with `key`, for `algorithm` only.
    pub fn key_with_id(
        mut self,
        kid: impl Into<String>,
        algorithm: Algorithm,
        key: DecodingKey,
    ) -> Self {
        if let Err(e) = self.ring.add(Some(kid.into()), algorithm, key) {
            self.fail(e);
        }
        self
    }

    /// A PEM public key (`-----BEGIN PUBLIC KEY-----` or `RSA PUBLIC KEY`) for `algorithm`
    /// (RS*, PS*, ES*, EdDSA).
    pub fn public_key_pem(mut self, algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Self {
        let pem = pem.as_ref();
        let key = match algorithm {
            Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
            _ => DecodingKey::from_rsa_pem(pem),
        };
        match key {
            Ok(key) => self.key(algorithm, key),
            Err(e) => {
                self.fail(ConfigError(format!(
                    "unreadable {algorithm:?} public key: {e}"
                )));
                self
            }
        }
    }

    /// The signature keys of a JWKS document held by the app, found by `kid`. See the crate
    /// docs for which keys are used.
    pub fn jwks(mut self, set: &JwkSet) -> Self {
        match KeyRing::from_jwks(set) {
            Ok(ring) if ring.is_empty() => {
                self.fail(ConfigError("the JWKS holds no usable signature key".into()))
            }
            Ok(ring) if self.ring.is_empty() => self.ring = ring,
            Ok(_) => self.fail(ConfigError("a JWKS cannot be mixed with other keys".into())),
            Err(e) => self.fail(e),
        }
        self
    }

    /// Fetches the JWKS document at `url` (https; plain http only on a loopback address),
    /// (fetched at the first request, refreshed every
    /// 5 minutes, refetched on an unknown `kid` at most every 30 s; see
    /// [`jwks_refresh`](Self::jwks_refresh)).
    #[cfg(feature = "jwks-fetch")]
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks = Some(crate::jwks::JwksOptions::new(url.into()));
        self
    }

    /// How often the fetched JWKS is refreshed, and how soon after a fetch an unknown `kid`
    /// may cause another.
    #[cfg(feature = "jwks-fetch")]
    pub fn jwks_refresh(mut self, every: Duration, unknown_kid_at_most_every: Duration) -> Self {
        match &mut self.jwks {
            Some(options) => {
                options.refresh = every;
                options.min_refetch = unknown_kid_at_most_every;
            }
            None => self.fail(ConfigError("jwks_refresh needs jwks_url first".into())),
        }
        self
    }

    /// Accepts tokens whose `iss` is `issuer` (call again for more); `iss` is then required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` names `audience` (call again for more).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Clock skew forgiven on `exp`, `nbf` and `iat`.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// The longest token accepted; longer is a 400 before any decoding.
    pub fn max_token_bytes(mut self, n: usize) -> Self {
        self.max_token_bytes = Some(n);
        self
    }

    /// Where the token is read from.
    pub fn token_source(mut self, source: TokenSource) -> Self {
        self.source = source;
        self
    }

    /// The `realm` of `WWW-Authenticate` challenges (printable ASCII without `"` or `\`):
    /// on the guard's own refusals and on the `Bearer` challenges of refusals made behind it
    /// (a [`Claims`](crate::Claims) that does not fit, a missing scope), which cannot know it.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Checks every token against these revocations, and refuses tokens older than their
    /// [`max_token_age`](crate::RevocationsBuilder::max_token_age).
    pub fn revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Requires `jti`, so that every accepted token can be revoked alone.
    pub fn require_jti(mut self) -> Self {
        self.require_jti = true;
        self
    }

    /// Lets requests without any token through (no [`VerifiedToken`](crate::VerifiedToken);
    /// `Option<Claims<T>>` is `None`). A token that is present is still checked.
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    /// A check of your own on every verified token (a tenant, a claim's value, an account
    /// state held in memory), run after the signature, times, issuer and audience, and
    /// before the revocation check; call again for more, run in order. Return the
    /// rejection to answer with: [`JwtRejection::InvalidToken`](crate::JwtRejection::InvalidToken) (401) or
    /// [`JwtRejection::InsufficientScope`](crate::JwtRejection::InsufficientScope) (403), with fixed text (it is sent to the client).
    /// It runs on every request: keep it to what is in memory.
    ///
    /// ```
    /// use parapet_jwt::{JwtLayer, JwtRejection};
    ///
    /// let guard = JwtLayer::builder()
    ///     .hs256("a secret of at least thirty-two bytes")
    ///     .check(|token| {
    ///         let tenant: Option<String> = token
    ///             .claims::<serde_json::Value>()?
    ///             .get("tenant")
    ///             .and_then(|t| t.as_str().map(str::to_owned));
    ///         match tenant.as_deref() {
    ///             Some("acme") => Ok(()),
    ///             _ => Err(JwtRejection::InvalidToken("this service is for acme")),
    ///         }
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn check<F>(mut self, check: F) -> Self
    where
        F: Fn(&crate::VerifiedToken) -> Result<(), crate::JwtRejection> + Send + Sync + 'static,
    {
        self.checks.push(Arc::new(check));
        self
    }

    /// Shapes every refusal the guard itself answers (HTTP; gRPC keeps its status codes):
    /// `refusal` gets the rejection and the response the guard would send (status,
    /// `WWW-Authenticate`, `Retry-After`, problem document) and returns the one to send.
    /// Keep the status and the challenge unless you mean to change them. Refusals made
    /// behind the guard ([`Claims`](crate::Claims) that does not fit,
    /// [`VerifiedToken::require_scope`](crate::VerifiedToken::require_scope)) are your
    /// handlers' responses, not the guard's.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::header::CONTENT_TYPE;
    /// use parapet_jwt::JwtLayer;
    ///
    /// let guard = JwtLayer::builder()
    ///     .hs256("a secret of at least thirty-two bytes")
    ///     .refusal(|rejection, response| {
    ///         let (mut parts, _) = response.into_parts();
    ///         parts.headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
    ///         let body = format!(r#"{{"code":"{}"}}"#, rejection.error_code().unwrap_or("denied"));
    ///         http::Response::from_parts(parts, Bytes::from(body))
    ///     })
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn refusal<F>(mut self, refusal: F) -> Self
    where
        F: Fn(&crate::JwtRejection, http::Response<bytes::Bytes>) -> http::Response<bytes::Bytes>
            + Send
            + Sync
            + 'static,
    {
        self.refusal = Some(Arc::new(refusal));
        self
    }

    /// The layer, or what is wrong with the options.
    pub fn build(self) -> Result<JwtLayer, ConfigError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        install_crypto_provider();
        let leeway = self.leeway.unwrap_or(Duration::from_secs(60));
        if let Some(revocations) = &self.revocations
            && leeway > revocations.leeway()
        {
            return Err(ConfigError(format!(
                "the guard's leeway ({leeway:?}) exceeds the revocations' ({:?}): a revoked token could outlive its revocation",
                revocations.leeway()
            )));
        }
        if self.realm.as_deref().is_some_and(|r| !is_quotable(r)) {
            return Err(ConfigError(
                "the realm must be printable ASCII without '\"' or '\\'".into(),
            ));
        }
        let max_bytes = self.max_token_bytes.unwrap_or(8 * 1024);
        if max_bytes < 16 {
            return Err(ConfigError("max_token_bytes must be at least 16".into()));
        }
        let keys = self.key_source()?;
        let non_empty = |list: Vec<String>| (!list.is_empty()).then(|| list.into_boxed_slice());
        Ok(JwtLayer {
            guard: Arc::new(Guard {
                keys,
                rules: Rules {
                    issuers: non_empty(self.issuers),
                    audiences: non_empty(self.audiences),
                    leeway: leeway.as_secs_f64(),
                    max_age: self
                        .revocations
                        .as_ref()
                        .map(|r| r.max_token_age().as_secs_f64()),
                    require_jti: self.require_jti,
                },
                source: self.source,
                max_bytes,
                realm: self.realm.map(std::sync::Arc::from),
                revocations: self.revocations,
                optional: self.optional,
                checks: self.checks,
                refusal: self.refusal,
            }),
        })
    }

    #[cfg(feature = "jwks-fetch")]
    fn key_source(&self) -> Result<KeySource, ConfigError> {
        match (&self.jwks, self.ring.is_empty()) {
            (Some(options), true) => {
                Ok(KeySource::Fetched(crate::jwks::Jwks::new(options.clone())?))
            }
            (Some(_), false) => Err(ConfigError(
                "a JWKS URL cannot be mixed with other keys".into(),
            )),
            (None, _) => self.static_keys(),
        }
    }

    #[cfg(not(feature = "jwks-fetch"))]
    fn key_source(&self) -> Result<KeySource, ConfigError> {
        self.static_keys()
    }

    fn static_keys(&self) -> Result<KeySource, ConfigError> {
        if self.ring.is_empty() {
            return Err(ConfigError(
                "the guard needs a key: hs256, key, public_key_pem or jwks".into(),
            ));
        }
        Ok(KeySource::Static(self.ring.clone()))
    }
}

impl std::fmt::Debug for JwtLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtLayerBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// jsonwebtoken 11 picks its crypto backend from its features, process-wide: parapet enables
/// `rust_crypto`; an app whose own jsonwebtoken enables `aws_lc_rs` as well leaves it two,
/// and then it picks none and panics on the first signature. So the guard installs the
/// `rust_crypto` backend when it is built, unless the app installed one before (that one
/// stays: `install_default` succeeds once per process).
fn install_crypto_provider() {
    use jsonwebtoken::crypto::{CryptoProvider, rust_crypto};
    let _already_chosen = CryptoProvider::install_default(&rust_crypto::DEFAULT_PROVIDER);
}
