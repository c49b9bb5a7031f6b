//! A session as a store returns it.

use std::time::SystemTime;

use bytes::Bytes;

use crate::SessionKey;

/// A live session read from a store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loaded {
    /// Where the session lives now: the key asked for, or, when that id was rotated within
    /// the grace window, the key it moved to. Later writes of the request go there.
    pub key: SessionKey,
    /// The data fields: name and serialized (JSON) value.
    pub fields: Vec<(String, Bytes)>,
    /// The user the session is bound to.
    pub user: Option<String>,
    /// When it was created.
    pub created: SystemTime,
    /// When its id was last rotated (or created).
    pub rotated: SystemTime,
    /// The store's time of this read: how old the session is is judged by one clock.
    pub now: SystemTime,
    /// The client IP that created it.
    pub ip: Option<String>,
    /// The `User-Agent` that created it.
    pub user_agent: Option<String>,
}

impl Loaded {
    /// A new loaded record (for store implementations).
    pub fn new(key: SessionKey, created: SystemTime) -> Self {
        Self {
            key,
            fields: Vec::new(),
            user: None,
            created,
            rotated: created,
            now: created,
            ip: None,
            user_agent: None,
        }
    }
}
