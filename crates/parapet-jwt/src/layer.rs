//! The tower layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::guard::Guard;
use crate::{Jwt, JwtLayerBuilder};

/// A JWT guard for the services it wraps: see the [crate docs](crate).
///
/// ```
/// use parapet_jwt::{JwtLayer, VerifiedToken};
/// use tower::ServiceBuilder;
///
/// let layer = JwtLayer::builder()
///     .hs256(b"a secret of at least thirty-two bytes!")
///     .build()
///     .expect("a valid configuration");
/// let service = ServiceBuilder::new()
///     .layer(layer)
///     .service_fn(|req: http::Request<String>| async move {
///         let user = req.extensions().get::<VerifiedToken>().and_then(|t| t.subject().map(str::to_owned));
///         Ok::<_, std::convert::Infallible>(http::Response::new(user.unwrap_or_default()))
///     });
/// ```
#[derive(Clone)]
pub struct JwtLayer {
    pub(crate) guard: Arc<Guard>,
}

impl JwtLayer {
    /// A builder: keys, checks and revocations.
    pub fn builder() -> JwtLayerBuilder {
        JwtLayerBuilder::default()
    }
}

impl<S> Layer<S> for JwtLayer {
    type Service = Jwt<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Jwt {
            inner,
            guard: Arc::clone(&self.guard),
        }
    }
}

impl std::fmt::Debug for JwtLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtLayer")
            .field("rules", &self.guard.rules)
            .field("source", &self.guard.source)
            .field("revocations", &self.guard.revocations)
            .finish_non_exhaustive()
    }
}
