//! What to do with a request that has no key.

/// What the layer does when the key extractor finds no key in a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MissingKey {
    /// Answer `400 Bad Request` with a short problem body. The default: a request that
    /// cannot be attributed must not slip past the limit.
    #[default]
    Reject,
    /// Let the request through, unlimited.
    Skip,
}
