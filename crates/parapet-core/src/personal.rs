//! What a response depended on that belongs to one client, marked where it happens so that
//! every layer sees it, on whichever side of the marking layer it stands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use http::{Extensions, Response};

/// A client's own input that a response may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PersonalInput {
    /// The client's session was read or written.
    Session,
    /// A token of the client's was verified.
    Token,
}

impl PersonalInput {
    const fn bit(self) -> u8 {
        match self {
            Self::Session => 1,
            Self::Token => 2,
        }
    }
}

/// The mark of one request: which of its client's own inputs ([`PersonalInput`]) the
/// response depended on.
///
/// The first parapet layer that sees a request puts one in its extensions
/// ([`Personal::of`]); every later layer, and the handles they give the handler (the
/// session), share that one. The session marks it when the handler touches the session, the
/// JWT guard when it verifies a token, and the response cache refuses to store a response
/// to a marked request. Because all of them hold the same mark, this works in any order of
/// the layers: a cache outside the session layer sees the mark as one inside it does,
/// though only the outer one sees the `Set-Cookie` and `Vary` the session layer adds.
/// Layers also put a marked one in the response's extensions, for a stack in which a
/// middleware between them rebuilt the request.
///
/// ```
/// use parapet_core::{Personal, PersonalInput};
///
/// let mut request = http::Request::new(());
/// // The cache, outside, takes the request's mark before calling the inner service…
/// let seen_by_cache = Personal::of(request.extensions_mut());
/// // …the session layer, inside, gets the same one, and the handler reads the session.
/// Personal::of(request.extensions_mut()).mark(PersonalInput::Session);
/// assert!(seen_by_cache.is_marked());
/// assert!(seen_by_cache.depends_on(PersonalInput::Session));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Personal(Arc<AtomicU8>);

impl Personal {
    /// The request's mark: the one in `extensions`, or a new one put there.
    pub fn of(extensions: &mut Extensions) -> Self {
        extensions.get_or_insert_default::<Self>().clone()
    }

    /// Records that the response depends on `input`.
    pub fn mark(&self, input: PersonalInput) {
        self.0.fetch_or(input.bit(), Ordering::Relaxed);
    }

    /// Whether the response depends on `input`.
    pub fn depends_on(&self, input: PersonalInput) -> bool {
        self.0.load(Ordering::Relaxed) & input.bit() != 0
    }

    /// Whether the response depends on any of the client's own inputs.
    pub fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }

    /// Puts this mark in `response`'s extensions when it is marked (a mark already there
    /// is merged into, so nothing a layer nearer the handler recorded is lost).
    pub fn carry<B>(&self, response: &mut Response<B>) {
        let bits = self.0.load(Ordering::Relaxed);
        if bits == 0 {
            return;
        }
        match response.extensions().get::<Self>() {
            Some(there) => {
                there.0.fetch_or(bits, Ordering::Relaxed);
            }
            None => {
                response.extensions_mut().insert(self.clone());
            }
        }
    }

    /// Whether `response` carries a marked `Personal`.
    pub fn in_response<B>(response: &Response<B>) -> bool {
        response
            .extensions()
            .get::<Self>()
            .is_some_and(Self::is_marked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mark_per_request_shared_by_every_layer() {
        let mut extensions = Extensions::new();
        let outer = Personal::of(&mut extensions);
        let inner = Personal::of(&mut extensions);
        assert!(!outer.is_marked());
        inner.mark(PersonalInput::Token);
        assert!(outer.depends_on(PersonalInput::Token));
        assert!(!outer.depends_on(PersonalInput::Session));
    }

    #[test]
    fn carried_into_the_response_only_when_marked() {
        let mark = Personal::default();
        let mut response = Response::new(());
        mark.carry(&mut response);
        assert!(!Personal::in_response(&response));
        mark.mark(PersonalInput::Session);
        mark.carry(&mut response);
        assert!(Personal::in_response(&response));
        // A second, separate mark merges into the one already there.
        let other = Personal::default();
        other.mark(PersonalInput::Token);
        other.carry(&mut response);
        let there = response.extensions().get::<Personal>().unwrap();
        assert!(there.depends_on(PersonalInput::Session) && there.depends_on(PersonalInput::Token));
    }
}
