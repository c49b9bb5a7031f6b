//! A key set by an earlier layer.

use std::fmt::{self, Display};
use std::marker::PhantomData;
use std::sync::Arc;

use super::{KeyExtractor, NoKey};
use crate::{RequestHead, Subject};

/// The value of type `T` that an earlier layer (authentication) put in the request's
/// extensions, such as a user id; absent when it is not there.
///
/// The key is `T`'s `Display` text, tagged with the `name` you give. The name, not the
/// Rust type's name, keeps keys stable across builds and refactors (type names are not
/// guaranteed stable), and lets two instances built from different code share state.
///
/// ```
/// use parapet_ratelimit::key::ExtensionKey;
///
/// #[derive(Clone)]
/// struct UserId(u64);
/// impl std::fmt::Display for UserId {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { self.0.fmt(f) }
/// }
///
/// let key = ExtensionKey::<UserId>::new("user");
/// ```
pub struct ExtensionKey<T> {
    name: Arc<str>,
    _type: PhantomData<fn() -> T>,
}

impl<T> ExtensionKey<T> {
    /// A key from the `T` extension, tagged `name` (`"user"`, `"tenant"`).
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self {
            name: name.into(),
            _type: PhantomData,
        }
    }
}

impl<T> Clone for ExtensionKey<T> {
    fn clone(&self) -> Self {
        Self {
            name: self.name.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> fmt::Debug for ExtensionKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ExtensionKey").field(&self.name).finish()
    }
}

impl<T> KeyExtractor for ExtensionKey<T>
where
    T: Display + Clone + Send + Sync + 'static,
{
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let value = head.extensions.get::<T>().ok_or(NoKey::Absent)?;
        Ok(Subject::new("extension", &*self.name).and(&Subject::new("value", value.to_string())))
    }
}
