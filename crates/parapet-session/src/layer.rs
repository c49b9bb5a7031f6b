//! The tower layer.

use std::sync::Arc;

use tower_layer::Layer;

use crate::shared::Shared;
use crate::{SessionControl, SessionLayerBuilder, Sessions};

/// Server-side sessions for the services it wraps: see the [crate docs](crate).
///
/// ```
/// use parapet_session::{Session, SessionLayer};
/// use tower::ServiceBuilder;
///
/// let service = ServiceBuilder::new()
///     .layer(SessionLayer::new())
///     .service_fn(|req: http::Request<String>| async move {
///         let session = req.extensions().get::<Session>().cloned();
///         Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
///     });
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    pub(crate) shared: Arc<Shared>,
}

impl SessionLayer {
    /// Sessions in memory with every default of [`SessionLayerBuilder`].
    pub fn new() -> Self {
        match SessionLayerBuilder::default().build() {
            Ok(layer) => layer,
            // The defaults are valid; a test checks it.
            Err(_) => unreachable!("the default configuration is valid"),
        }
    }

    /// A builder to set options.
    pub fn builder() -> SessionLayerBuilder {
        SessionLayerBuilder::default()
    }

    /// A handle to list and revoke any user's sessions outside a request (an admin page).
    pub fn control(&self) -> SessionControl {
        SessionControl {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Default for SessionLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = Sessions<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Sessions {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer").finish_non_exhaustive()
    }
}
