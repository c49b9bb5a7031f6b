//! A JWT guard as a tower layer, with revocation that costs no round trip.
//!
//! [`JwtLayer`] checks the bearer token of every request and puts a [`VerifiedToken`] in
//! the request's extensions; with feature `axum`, [`Claims<T>`] reads its claims into your
//! type. It works on any tower stack: axum, plain hyper, tonic (refusals become gRPC
//! statuses: UNAUTHENTICATED 16, INVALID_ARGUMENT 3, PERMISSION_DENIED 7, UNAVAILABLE 14;
//! handlers on plain hyper or tonic read the [`VerifiedToken`] from the request's
//! extensions).
//!
//! ```
//! use std::time::Duration;
//! use parapet_jwt::{JwtLayer, Revocations};
//!
//! let revocations = Revocations::memory();
//! let layer = JwtLayer::builder()
//!     .hs256(b"a secret of at least thirty-two bytes!")
//!     .issuer("https://auth.example")
//!     .leeway(Duration::from_secs(30))
//!     .revocations(revocations.clone())
//!     .build()?;
//! // axum: Router::new().route(..).layer(layer); revoke with `revocations.revoke_user("alice")`.
//! # Ok::<_, parapet_core::ConfigError>(())
//! ```
//!
//! # What is checked
//!
//! - **Keys and algorithms.** Every key is pinned to one algorithm when the guard is built:
//!   HMAC secrets (at least as long as the hash, RFC 7518 §3.2), RSA, RSA-PSS, ECDSA and
//!   EdDSA public keys, or a JWKS document (static, or fetched from a URL with feature
//!   `jwks-fetch`, refreshed in the background and refetched, at most every 30 s, when a
//!   token names an unknown `kid`). The token's `kid` picks the key; its `alg` must then
//!   equal the key's algorithm. So `alg: none` and algorithm confusion (an HS256 token
//!   "signed" with an RSA public key) cannot pass, and header fields that point elsewhere
//!   (`jku`, `jwk`, `x5u`) are never followed. A header with `crit` is refused (RFC 7515
//!   §4.1.11: we understand no extension).
//! - **Claims.** `exp` and `iat` are required numbers; `nbf` if present; all with a leeway.
//!   `iss` and `aud` against what you configure; an `aud` is refused when you expect none
//!   (RFC 7519 §4.1.3): set [`audience`](JwtLayerBuilder::audience) for identity providers
//!   that always send one. `jti` is optional unless [`require_jti`](JwtLayerBuilder::require_jti).
//! - **Size and shape.** The token must be one RFC 6750 `b64token` of at most 8 KiB (by
//!   default), from one place: two credentials are a 400. The header and the claims must be
//!   JSON objects (RFC 7515 §4, RFC 7519 §7.2); a registered claim that is present must
//!   have its type (`aud: null`, `exp: null` are malformed, not absent).
//! - **Your own checks.** [`check`](JwtLayerBuilder::check) runs a closure of yours on
//!   every verified token (a tenant, a claim's value) before the revocation check; its
//!   rejection is the answer. [`refusal`](JwtLayerBuilder::refusal) shapes the guard's
//!   refusals (a JSON body of your own, keeping the status and the challenge).
//!
//! Refusals follow RFC 6750 §3 (see [`JwtRejection`] for the table): 401 with
//! `WWW-Authenticate: Bearer realm=…` and `error="invalid_token"` when the token is bad or
//! revoked, 400 `invalid_request` for malformed credentials, 403 `insufficient_scope` from
//! [`VerifiedToken::require_scope`]. The token is never echoed or logged.
//!
//! ## Why not `jsonwebtoken::decode`
//!
//! The signature check, the keys and the JWK parsing are jsonwebtoken's
//! (`jsonwebtoken::crypto::verify`, `DecodingKey`, `JwkSet`). `decode` itself reads the
//! header twice and the claims twice (once for its validation, once into your type), and
//! cannot give the guard `iat` and `jti` without a third read. The guard reads the header
//! once and the registered claims once, borrowed, and validates them itself; your type is
//! read once, by [`Claims<T>`]. Measured in `BENCHMARKS.md`.
//!
//! # Revocation
//!
//! [`Revocations`] revokes one token (issuer + `jti`, remembered until the token would have
//! expired anyway), every token of a user issued so far (a per-user epoch compared with
//! `iat`), or every token issued so far (a global epoch). Each instance holds a replica and
//! checks requests against it: zero round trips. On Redis (standalone or Cluster) a
//! revocation is one script that writes and announces; every instance hears it through
//! parapet-core's fan-out, catches up after any disconnect (from a log of recent changes, or by
//! loading the whole set when the log no longer covers the gap) before trusting its
//! replica again, and applies [`WhenStale`] while its replica cannot be confirmed current
//! within the staleness bound (500 ms by default): refuse with 503 (default), ask Redis,
//! or let through on what it knew.
//!
//! Tokens without `jti` can still be revoked by user (`sub`) and by the global epoch.
//!
//! The rule is exact to the millisecond: a user or global revocation at `E` ms refuses the
//! tokens with `iat × 1000 ≤ E`. A token issued in the revocation's own millisecond counts
//! as before it. `iat` may carry a fraction (RFC 7519 §2, NumericDate): issue it in
//! milliseconds (`1765100000.123`, as the examples do) and a login right after a revocation
//! is not caught by it. A whole-second `iat` cannot say where in its second the token was
//! issued, so a token issued in the same second as the revocation, even just after it, is
//! revoked too.
//!
//! A full set never fails a revocation open: it widens, token to user to everyone (see
//! [`Revocations`]), and a per-subject cap keeps one account from filling the token set.
//! Redis data loss is detected by a generation marker: every instance then refuses the
//! tokens issued before the loss.
//!
//! Epochs are stamped with the store's clock (Redis `TIME`; the instance's clock in memory)
//! and compared with `iat`, stamped by the issuer's clock. Keep them in sync (NTP): if the
//! issuer runs `d` ahead, tokens issued within `d` before a user revocation survive it; if
//! it runs behind, tokens issued within `d` after it are refused.
//!
//! Propagation is eventual within a bound: after `revoke_*` returns, the instance that made
//! it refuses the token at once; the others refuse it when the announcement arrives (p99 of
//! a few ms on loopback, `BENCHMARKS.md` §10), and an instance that cannot confirm it hears
//! announcements within the staleness bound stops trusting its replica.
//!
//! # Migrating
//!
//! | you use | parapet |
//! |---|---|
//! | jwt-authorizer `JwtAuthorizer::from_secret(s).build().await?.into_layer()` | `JwtLayer::builder().hs256(s).build()?` (sync; a secret under 32 bytes is refused) |
//! | jwt-authorizer `from_rsa_pem_text(pem)` / `from_ec_pem_text` / `from_ed_pem_text` | `.public_key_pem(Algorithm::RS256, pem)` (ES256, EdDSA, …): the algorithm is pinned |
//! | jwt-authorizer `from_jwks_url(url)` | `.jwks_url(url)` (feature `jwks-fetch`) |
//! | jwt-authorizer `Validation::new().iss(..).aud(..).leeway(..)` | `.issuer(..)`, `.audience(..)`, `.leeway(..)`; `iat` is required, `nbf` checked when present |
//! | jwt-authorizer `JwtClaims<T>` / axum-jwt-auth `Claims<T>` (`.claims`) | `Claims<T>` (a tuple: `Claims(t)`), `Option<Claims<T>>` with `.optional()` |
//! | jwt-authorizer `JwtSource::Cookie(name)` | `.token_source(TokenSource::cookie(name))` (mind CSRF: browsers send cookies on cross-site requests; use `SameSite` cookies) |
//! | jwt-authorizer `.check(fn)` | check the claims in the handler; [`VerifiedToken::require_scope`] for scopes |
//! | a Redis blacklist `GET` per request | [`Revocations`]: a replica on each instance, zero round trips |
//!
//! Rotating a secret or key: give each key an id ([`key_with_id`](JwtLayerBuilder::key_with_id))
//! and put `kid` in the tokens' header; a key without an id must be the only key. OIDC
//! discovery is not built in: pass the `jwks_uri` to `jwks_url`.
//!
//! A revocation must be remembered while a token issued before it can be presented, so a
//! guard with revocations refuses tokens older than
//! [`max_token_age`](RevocationsBuilder::max_token_age) (24 h by default). Redis must not
//! evict the revocation keys (`noeviction`, see parapet-core) and should persist them (AOF):
//! an instance keeps what it knew across a Redis restart, but one started afterwards learns
//! only what Redis kept.
//!
//! # Metrics
//!
//! See [`metrics`] for names and labels.
//!
//! # Crates used
//!
//! `jsonwebtoken` (signatures, keys, JWK), `serde_json` (claims), `cookie` (the cookie
//! source), `reqwest` with rustls (JWKS fetching, feature `jwks-fetch`).

mod builder;
mod claims;
mod future;
mod guard;
#[cfg(feature = "jwks-fetch")]
mod jwks;
mod keys;
mod layer;
mod log_position;
pub mod metrics;
mod rejection;
mod replica;
mod revocations;
mod revocations_builder;
mod service;
#[cfg(feature = "ratelimit")]
mod subject_key;
mod token_source;
mod verified_token;
mod verifier;
mod when_stale;

pub use builder::JwtLayerBuilder;
pub use claims::Claims;
pub use future::ResponseFuture;
/// The jsonwebtoken crate the guard is built on, re-exported so that an app that mints its
/// own tokens (`jsonwebtoken::encode`) needs no second dependency on it, and uses the same
/// version and crypto backend as the guard.
pub use jsonwebtoken;
pub use jsonwebtoken::jwk::JwkSet;
pub use jsonwebtoken::{Algorithm, DecodingKey};
pub use layer::JwtLayer;
pub use parapet_core::{ConfigError, StoreError};
pub use rejection::JwtRejection;
pub use revocations::Revocations;
pub use revocations_builder::RevocationsBuilder;
pub use service::Jwt;
#[cfg(feature = "ratelimit")]
pub use subject_key::SubjectKey;
pub use token_source::TokenSource;
pub use verified_token::VerifiedToken;
pub use when_stale::WhenStale;
