//! The writes of one request.

use bytes::Bytes;

/// What one request changed in its session, written by one store call: every data field
/// first removed when `clear`, then `set` written, then `remove` deleted. A name appears
/// at most once. Fields the request did not change are not touched, so concurrent requests
/// that change different fields both keep their change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Changes {
    /// Remove every data field first.
    pub clear: bool,
    /// Fields to write: name and serialized (JSON) value.
    pub set: Vec<(String, Bytes)>,
    /// Fields to delete.
    pub remove: Vec<String>,
}

impl Changes {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        !self.clear && self.set.is_empty() && self.remove.is_empty()
    }
}
