//! One key for every request.

use super::{KeyExtractor, NoKey};
use crate::{RequestHead, Subject};

/// Every request shares one key: a limit on the whole route, whoever calls it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Global;

impl KeyExtractor for Global {
    fn extract(&self, _head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        Ok(Subject::new("global", []))
    }
}
