//! A borrowed view of a request's head, for key extractors and resolvers.

use http::{Extensions, HeaderMap, Method, Request, Uri};

/// The parts of a request that key extractors, resolvers, cost functions and cache-key
/// functions may read: everything but the body.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI (path and query).
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions: connect info, values set by earlier layers (an authenticated user).
    pub extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// Borrows the head of `request`.
    pub fn of<B>(request: &'a Request<B>) -> Self {
        Self {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }
}
