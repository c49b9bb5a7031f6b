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
//! | `set_user` (login) | load + create (+ removal of an anonymous old id) | new id |
//!
//! Reads are a plain `HGETALL` on Redis; every write is one script. The idle expiry is
//! moved by a separate `touch` call at most once per `touch_after`, judged by this
//! instance's clock (the expiry itself is computed from Redis time).
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
//! - The cookie (through the `cookie` crate): `__Host-session`, `HttpOnly`, `Secure`,
//!   `SameSite=Lax`, `Path=/`, `Max-Age` = the absolute timeout (counted again from each new
//!   id). The `__Host-` prefix keeps a sibling subdomain from planting an id for this host;
//!   [`host_prefix(false)`](SessionLayerBuilder::host_prefix) to share the cookie. Of
//!   several cookies of that name, the first well-formed one is used.
//! - curl and browsers keep `Secure` and `__Host-` cookies on `http://localhost`. Over
//!   plain HTTP on any other host they drop it, and every request starts a new session:
//!   serve HTTPS, or (development only) `host_prefix(false).insecure_cookie()`.
//! - A response that sets the cookie gets `Cache-Control: private` unless it has a
//!   `Cache-Control`; one whose handler read the session gets `Vary: cookie`.
//!
//! ## Writes, expiry, rotation
//!
//! - Only changed fields are written, by one atomic script that refreshes the expiry too:
//!   requests that change different fields never lose an update; [`Session::incr`] is
//!   atomic for counters. Two requests that set the *same* field: the last write wins.
//! - A session holds at most [`max_session_bytes`](SessionLayerBuilder::max_session_bytes)
//!   (64 KiB), each field counted as its name, its JSON value and 64 bytes of overhead.
//! - An idle timeout and an absolute lifetime together, both enforced by the store (a
//!   Redis TTL, never past the absolute expiry).
//! - [`Session::set_user`] (login) and [`Session::rotate`] (privilege change) issue a new
//!   id and kill the old one at once. At login the fields of an anonymous session carry
//!   over (a cart): regenerate any security token kept in the session (CSRF, OAuth
//!   `state`) after login. [`rotate_every`](SessionLayerBuilder::rotate_every)
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
//! [`max_sessions`](SessionLayerBuilder::max_sessions) per user (100, evicting the oldest,
//! by default; see [`OverLimit`]); logging in again on a logged-in device replaces its
//! session and does not count twice. The index must survive for "log out everywhere" to
//! reach every session: run Redis with `maxmemory-policy noeviction` (see parapet-core).
//!
//! The client IP recorded at creation is the TCP peer; behind a proxy, give the layer the
//! same [`ClientIp`](parapet_core::ClientIp) the rate limiter uses
//! ([`client_ip`](SessionLayerBuilder::client_ip)). With axum, serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`, or no IP is recorded.
//!
//! ## Failures
//!
//! A store that fails or misses its deadline ([`store_timeout`](SessionLayerBuilder::store_timeout),
//! 100 ms per call; `RedisStore::timeout` also bounds each call, the shorter wins) makes the
//! session call fail with [`SessionError::Store`], a 503 with `Retry-After: 1`. Never is a
//! session silently replaced by an empty one: a user is not logged out, and does not lose
//! a cart, because Redis blinked. Counted in [`metrics`].
//!
//! After the handler:
//! - a response with a 5xx status writes none of the request's pending changes (what
//!   acted at once — `incr` on an existing session, `set_user`, `rotate`, `destroy` — did);
//! - a failed write replaces the handler's response with the error's: 503 (store), 401
//!   (the session ended during the request), 413 (the session would pass its byte limit).
//!
//! A 503 says the answer did not come in time, not that nothing happened: a store that is
//! slow rather than down may still run the call after the deadline. What that leaves:
//! - **a login (`set_user`) or a new anonymous session**: nothing lasting. The layer deletes
//!   the id it could not confirm (at once, and twice more within five seconds), so it
//!   neither lingers nor counts toward [`max_sessions`](SessionLayerBuilder::max_sessions);
//!   the old id the login replaced may be gone, which logs that client out.
//! - **a field write, `incr`, `rotate`, `destroy`**: may have been applied. Setting a field
//!   again is safe to retry; `incr` and anything that appends (`cart.push(…)` then
//!   `insert`) count twice when retried, so give such writes an id of the client's making
//!   (an item id as the field name, not a list) when a double must not happen.
//!
//! ## Migrating from tower-sessions
//!
//! | tower-sessions | parapet-session |
//! |---|---|
//! | `SessionManagerLayer::new(store)` | `SessionLayer::builder().store(store).build()?` |
//! | `.with_secure(false)` | `.host_prefix(false).insecure_cookie()` (not needed on `localhost`) |
//! | `.with_expiry(Expiry::OnInactivity(d))` | `.idle_timeout(d)` (with `.absolute_timeout`, both at once) |
//! | `session.get::<T>(k)`, `insert(k, v)` | the same names (`insert` takes `&v`) |
//! | `session.remove::<T>(k)` | `get::<T>(k)` then `remove(k)` |
//! | `session.cycle_id()` | `session.rotate()`, or `set_user(id)` at login |
//! | `session.flush()` / `delete()` | `session.destroy()` |
//! | `MemoryStore`, `tower-sessions-redis-store` | `MemoryStore` (bounded), `RedisStore` |
//!
//! ## Features
//!
//! | feature | adds |
//! |---|---|
//! | `axum` | `FromRequestParts` for [`Session`] (and `Option<Session>`) and [`ExistingSession`]; `IntoResponse` for [`SessionError`] and [`SessionRejection`] |
//! | `ratelimit` | `UserKey`: a rate-limit key (parapet-ratelimit) per logged-in user, behind [`LoadUserLayer`] |
//!
//! ## Choices
//!
//! - Cookies: the `cookie` crate parses `Cookie` headers and writes `Set-Cookie`.
//! - Randomness: `getrandom` (the OS CSPRNG directly, no user-space generator to seed).
//! - Encoding: `base64` (URL-safe, unpadded); hashing: parapet-core's SHA-256 digest
//!   (`sha2`); values: `serde_json`.
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
mod load_user;
mod load_user_layer;
pub mod metrics;
mod over_limit;
mod rejection;
mod service;
mod session;
mod session_info;
mod session_key;
mod session_rules;
mod session_user;
mod shared;
pub mod store;
#[cfg(feature = "ratelimit")]
mod user_key;

pub use builder::SessionLayerBuilder;
pub use control::SessionControl;
pub use cookie::SameSite;
pub use error::SessionError;
pub use existing_session::ExistingSession;
pub use future::ResponseFuture;
pub use layer::SessionLayer;
pub use load_user::LoadUser;
pub use load_user_layer::LoadUserLayer;
pub use over_limit::OverLimit;
pub use rejection::SessionRejection;
pub use service::Sessions;
pub use session::Session;
pub use session_info::SessionInfo;
pub use session_key::SessionKey;
pub use session_rules::SessionRules;
pub use session_user::SessionUser;
pub use store::{Changes, MemoryStore, RedisStore, SessionStore};
#[cfg(feature = "ratelimit")]
pub use user_key::UserKey;
