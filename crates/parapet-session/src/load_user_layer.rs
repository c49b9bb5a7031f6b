//! The layer that reads the session's user before the inner service runs.

use tower_layer::Layer;

use crate::LoadUser;

/// Loads the request's session before the inner service runs and puts its user, when it
/// is logged in, in the request's extensions as a [`SessionUser`](crate::SessionUser): for
/// a rate limit per logged-in user ([`UserKey`](crate::UserKey)) or any synchronous layer
/// that needs to know who is asking.
///
/// Place it inside the [`SessionLayer`](crate::SessionLayer) and outside what reads the
/// user; in axum, on the routes that need it, after the limiter:
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
/// let app: Router = Router::new()
///     .route("/cart", get(|| async { "cart" }))
///     .route_layer(per_user) // inner: reads the user
///     .route_layer(LoadUserLayer::new()) // outer: loads it
///     .layer(SessionLayer::builder().build()?);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Cost: a request with a session cookie has its session read before the handler — one
/// round trip, which the handler's own reads then share (a session is read once per
/// request); a request without one costs nothing. A store that cannot answer gets the
/// session's error response (`503` + `Retry-After`) without calling the inner service, so
/// a per-user limit is never skipped because the store was slow. Reading the session marks
/// the answer as personal: a cache, wherever it stands, does not store it.
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
