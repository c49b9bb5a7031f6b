//! Two keys together.

use super::{KeyExtractor, NoKey};
use crate::{RequestHead, Subject};

/// Both keys together: absent if either is. Built by [`KeyExtractor::and`].
#[derive(Debug, Clone)]
pub struct And<A, B> {
    first: A,
    second: B,
}

impl<A, B> And<A, B> {
    pub(crate) fn new(first: A, second: B) -> Self {
        Self { first, second }
    }
}

impl<A: KeyExtractor, B: KeyExtractor> KeyExtractor for And<A, B> {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let first = self.first.extract(head)?;
        let second = self.second.extract(head)?;
        Ok(first.and(&second))
    }
}
