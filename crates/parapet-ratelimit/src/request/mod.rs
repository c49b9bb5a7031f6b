//! The request path: the layer, its service and future, the limiter they share, and the
//! builder that configures it.

pub(crate) mod builder;
pub(crate) mod deny_cache;
pub(crate) mod future;
pub(crate) mod layer;
pub(crate) mod limiter;
mod limiter_api;
pub(crate) mod missing_key;
pub(crate) mod service;
