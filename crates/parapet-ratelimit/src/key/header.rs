//! A key from a request header.

use http::HeaderName;

use super::{KeyExtractor, NoKey};
use crate::{RequestHead, Subject};

/// Longest header value accepted as a key, by default.
const DEFAULT_MAX_LEN: usize = 256;

/// One request header's value, such as an API key.
///
/// Absent (so `400` by default) when the header is missing, empty, sent more than once,
/// or longer than [`max_len`](Self::max_len) bytes (default 256): a client cannot make the
/// limiter hash and store arbitrarily large keys, and a long value is refused, not
/// truncated (two keys sharing a prefix must not share a bucket). The value is only ever
/// stored hashed.
///
/// ```
/// use http::HeaderName;
/// use parapet_ratelimit::key::HeaderKey;
///
/// let key = HeaderKey::new(HeaderName::from_static("x-api-key"));
/// ```
#[derive(Debug, Clone)]
pub struct HeaderKey {
    name: HeaderName,
    max_len: usize,
}

impl HeaderKey {
    /// A key from header `name`, at most 256 bytes.
    pub fn new(name: HeaderName) -> Self {
        Self {
            name,
            max_len: DEFAULT_MAX_LEN,
        }
    }

    /// The longest value accepted (default 256 bytes).
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }
}

impl KeyExtractor for HeaderKey {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let mut values = head.headers.get_all(&self.name).iter();
        let value = values.next().ok_or(NoKey::Absent)?;
        if values.next().is_some() {
            return Err(NoKey::Absent);
        }
        let bytes = value.as_bytes().trim_ascii();
        if bytes.is_empty() || bytes.len() > self.max_len {
            return Err(NoKey::Absent);
        }
        Ok(Subject::new("header", self.name.as_str()).and(&Subject::new("value", bytes)))
    }
}
