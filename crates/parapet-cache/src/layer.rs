//! The tower layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::shared::Shared;
use crate::{Cache, CacheHandle, CacheLayerBuilder};

/// An RFC 9111 shared cache in front of a service: see the [crate docs](crate).
///
/// ```
/// use parapet_cache::CacheLayer;
/// use tower::ServiceBuilder;
///
/// let service = ServiceBuilder::new()
///     .layer(CacheLayer::new())
///     .service_fn(|_req: http::Request<String>| async {
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::from("hello")))
///     });
/// ```
#[derive(Clone)]
pub struct CacheLayer {
    pub(crate) shared: Arc<Shared>,
}

impl CacheLayer {
    /// A cache in 64 MiB of memory with every default of [`CacheLayerBuilder`].
    pub fn new() -> Self {
        match CacheLayerBuilder::default().build() {
            Ok(layer) => layer,
            // The defaults are valid; a test checks it.
            Err(_) => unreachable!("the default configuration is valid"),
        }
    }

    /// A builder to set options.
    pub fn builder() -> CacheLayerBuilder {
        CacheLayerBuilder::default()
    }

    /// A handle to invalidate and read statistics, valid as long as any clone of the layer
    /// or its services.
    pub fn handle(&self) -> CacheHandle {
        CacheHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Default for CacheLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Cache {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl std::fmt::Debug for CacheLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheLayer").finish_non_exhaustive()
    }
}
