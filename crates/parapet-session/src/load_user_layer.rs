//! The layer that reads the session's user before the inner service runs.

use tower_layer::Layer;

use crate::LoadUser;

/// Loads the request's session before the inner service runs and puts its user, when it
/// is logged in, in the request's extensions as a [`SessionUser`](crate::SessionUser): for
/// a rate limit per logged-in user (`UserKey`, feature `ratelimit`) or any synchronous
/// layer that needs to know who is asking.
///
/// Place it inside the [`SessionLayer`](crate::SessionLayer) and outside what reads the
/// user. In axum, on the routes that need it: its `.route_layer` call comes after the
/// limiter's (the last call is the outermost). Keep a per-address limit outside the session
/// layer, as in the example: any well-formed cookie, a forged one included, costs a store
/// read here before the per-user limit can refuse it.
///
/// ```
/// # #[cfg(feature = "ratelimit")] {
/// use axum::{Router, routing::get};
/// use parapet_core::PeerIp;
/// use parapet_ratelimit::key::KeyExtractor;
/// use parapet_ratelimit::{Quota, RateLimitLayer};
/// use parapet_session::{LoadUserLayer, SessionLayer, UserKey};
///
/// let per_user = RateLimitLayer::builder()
///     .policy("user", Quota::per_minute(120))
///     .key(UserKey.or(PeerIp::new())) // anonymous requests: per address
///     .build()?;
/// let per_address = RateLimitLayer::builder()
///     .policy("ip", Quota::per_minute(300))
///     .key(PeerIp::new())
///     .build()?;
/// let app: Router = Router::new()
///     .route("/cart", get(|| async { "cart" }))
///     .route_layer(per_user) // inner: reads the user
///     .route_layer(LoadUserLayer::new()) // outer: loads it
///     .layer(SessionLayer::builder().build()?)
///     .layer(per_address); // outermost: before any store read
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cost: a request with a session id has its session read before the inner service — one
/// round trip, which the handler's own reads then share (a session is read once per
/// request). That read moves the idle expiry as any read does, on requests the limiter
/// then refuses too, and marks the answer as depending on the cookie (`Vary: cookie`, and
/// no cache on either side stores it). A request without a session id costs nothing and is
/// left untouched. A store that cannot answer gets the session's error response (`503` +
/// `Retry-After`) without calling the inner service, so a per-user limit is not skipped
/// because the store was slow.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadUserLayer {
    _private: (),
}

impl LoadUserLayer {
    /// The layer.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> Layer<S> for LoadUserLayer {
    type Service = LoadUser<S>;

    fn layer(&self, inner: S) -> LoadUser<S> {
        LoadUser { inner }
    }
}
