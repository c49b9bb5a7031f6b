//! Server-side sessions as a tower layer: in memory or on Redis (standalone or Cluster),
//! written field by field so concurrent requests never lose an update, with a per-user
//! index ("your devices", log out everywhere, a cap on concurrent sessions) and secure
//! defaults.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use parapet_session::{Session, SessionError, SessionLayer};
//!
//! async fn visits(session: Session) -> Result<String, SessionError> {
//!     let n = session.incr("visits", 1).await?;
//!     Ok(format!("visit number {n}"))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionLayer::new());
//! # }
//! ```
//!
//! ## What a request costs
//!
//! | the handler… | store round trips | cookie |
//! |---|---|---|
//! | never touches its [`Session`] | 0 | none |
//! | reads (`get`, `user`) | 1 (the idle expiry moves in the same call, at most once per [`touch_after`](SessionLayerBuilder::touch_after)) | none |
//! | writes (`insert`, `remove`, `clear`) | 1 after the handler, or 2 with a read | set when the session is new |
//! | `incr` | 1 (+1 for the read) | set when new |
//! | `set_user` (login) | load + create + removal of the old id | new id |
//!
//! ## Identity and cookie
//!
//! - Ids hold 256 bits from the OS CSPRNG (`getrandom`), plus a 128-bit group (the user's,
//!   once logged in; random before), base64url in the cookie. The store sees only
//!   SHA-256 of the secret part ([`SessionKey`]): a store dump or a log line never yields a
//!   usable id.
//! - A cookie that is not exactly a well-formed id (garbage, truncated, padded, oversized)
//!   is no session, without a store call. An id the store does not know is no session
//!   either, and its cookie is removed. Neither is ever a 500.
//! - The cookie (through the `cookie` crate): `HttpOnly`, `Secure`, `SameSite=Lax`,
//!   `Path=/`, `Max-Age` = the absolute timeout; [`host_prefix`](SessionLayerBuilder::host_prefix)
//!   for `__Host-`. curl and browsers keep `Secure` cookies on `http://localhost`.
//! - A response that sets the cookie gets `Cache-Control: private` unless it has a
//!   `Cache-Control`; one whose handler read the session gets `Vary: cookie`.
//!
//! ## Writes, expiry, rotation
//!
//! - Only changed fields are written, by one atomic script that refreshes the expiry too:
//!   requests that change different fields never lose an update; [`Session::incr`] is
//!   atomic for counters.
//! - An idle timeout and an absolute lifetime together, both enforced by the store (a
//!   Redis TTL, never past the absolute expiry).
//! - [`Session::set_user`] (login) and [`Session::rotate`] (privilege change) issue a new
//!   id and kill the old one at once. [`rotate_every`](SessionLayerBuilder::rotate_every)
//!   rotates a logged-in session periodically, the old id working for a short grace window
//!   so requests in flight with it do not fail.
//!
//! ## Per-user control
//!
//! A logged-in session is in its user's index: [`Session::sessions`] lists them (created,
//! last seen, IP, user agent), [`Session::revoke`] and [`Session::revoke_others`] end them,
//! [`SessionControl`] does the same for any user. With Redis the index lives in the same
//! Cluster slot as the user's sessions, so each of these is one script call, and a
//! revocation holds on every instance at once (every request reads Redis). At most
//! [`max_sessions`](SessionLayerBuilder::max_sessions) per user, by [`OverLimit`].
//!
//! ## Failures
//!
//! A store that fails or misses its deadline ([`store_timeout`](SessionLayerBuilder::store_timeout),
//! 100 ms) makes the session call fail with [`SessionError::Store`], a 503 with
//! `Retry-After: 1`; a failed write after the handler replaces its response with that 503.
//! Never is a session silently replaced by an empty one: a user is not logged out, and
//! does not lose a cart, because Redis blinked. Counted in [`metrics`].
//!
//! ## Features
//!
//! | feature | adds |
//! |---|---|
//! | `axum` | `FromRequestParts` for [`Session`] (and `Option<Session>`) and [`ExistingSession`]; `IntoResponse` for [`SessionError`] and [`SessionRejection`] |
//!
//! ## Choices
//!
//! - Cookies: the `cookie` crate parses `Cookie` headers and writes `Set-Cookie`.
//! - Randomness: `getrandom` (the OS CSPRNG directly, no user-space generator to seed).
//! - Encoding: `base64` (URL-safe, unpadded); hashing: `sha2`; values: `serde_json`.
//! - Memory store: parapet-core's bounded, sharded table.

mod builder;
mod control;
mod error;
mod existing_session;
#[cfg(feature = "axum")]
mod extract;
mod future;
mod id;
mod layer;
pub mod metrics;
mod over_limit;
mod rejection;
mod service;
mod session;
mod session_info;
mod session_key;
mod session_rules;
mod shared;
pub mod store;

pub use builder::SessionLayerBuilder;
pub use control::SessionControl;
pub use cookie::SameSite;
pub use error::SessionError;
pub use existing_session::ExistingSession;
pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub use over_limit::OverLimit;
pub use rejection::SessionRejection;
pub use service::SessionService;
pub use session::Session;
pub use session_info::SessionInfo;
pub use session_key::SessionKey;
pub use session_rules::SessionRules;
pub use store::{Changes, MemoryStore, RedisStore, SessionStore};
