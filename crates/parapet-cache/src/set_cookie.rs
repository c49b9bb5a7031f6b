//! What the cache does with responses that set cookies.

/// What the cache does with a response that carries `Set-Cookie`.
///
/// A cookie is meant for the client that caused it: a shared cache that replays it hands
/// one user's session to the next. The default never stores such a response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetCookie {
    /// Not stored (default). The response reaches its own client untouched.
    #[default]
    Bypass,
    /// Stored without its `Set-Cookie` fields; its own client still receives them. For
    /// origins that set a harmless cookie (a consent flag) on cacheable pages.
    Strip,
    /// Stored as is: every client served from the cache receives the same cookie. Only for
    /// cookies that are the same for everyone.
    StoreAsIs,
}
