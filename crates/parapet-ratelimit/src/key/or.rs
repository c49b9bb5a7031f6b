//! A key with a fallback.

use super::{KeyExtractor, NoKey};
use crate::{RequestHead, Subject};

/// The first key, or the second when the first is absent. Built by [`KeyExtractor::or`].
/// A misconfiguration of the first ([`NoKey::Misconfigured`]) is reported, not papered over.
///
/// The two never collide: a user id `"1.2.3.4"` and the IP 1.2.3.4 are different subjects.
#[derive(Debug, Clone)]
pub struct Or<A, B> {
    first: A,
    second: B,
}

impl<A, B> Or<A, B> {
    pub(crate) fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: KeyExtractor, B: KeyExtractor> KeyExtractor for Or<A, B> {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        match self.first.extract(head) {
            Err(NoKey::Absent) => self.second.extract(head),
            other => other,
        }
    }

    fn ip_subject(&self, ip: std::net::IpAddr) -> Option<Subject> {
        self.first
            .ip_subject(ip)
            .or_else(|| self.second.ip_subject(ip))
    }
}
