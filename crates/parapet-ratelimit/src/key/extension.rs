//! A key set by an earlier layer.

use std::fmt::{self, Display};
use std::marker::PhantomData;

use super::KeyExtractor;
use crate::{RequestHead, Subject};

/// The value of type `T` that an earlier layer (authentication) put in the request's
/// extensions, such as a user id; absent when it is not there.
///
/// The key is `T`'s `Display` text, tagged with `T`'s type name.
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
/// let key = ExtensionKey::<UserId>::new();
/// ```
pub struct ExtensionKey<T> {
    _type: PhantomData<fn() -> T>,
}

impl<T> ExtensionKey<T> {
    /// A key from the `T` extension.
    pub fn new() -> Self {
        Self { _type: PhantomData }
    }
}

impl<T> Default for ExtensionKey<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for ExtensionKey<T> {
    fn clone(&self) -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for ExtensionKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExtensionKey<{}>", std::any::type_name::<T>())
    }
}

impl<T> KeyExtractor for ExtensionKey<T>
where
    T: Display + Clone + Send + Sync + 'static,
{
    fn extract(&self, head: &RequestHead<'_>) -> Option<Subject> {
        let value = head.extensions.get::<T>()?;
        Some(Subject::new(std::any::type_name::<T>(), value.to_string()))
    }
}
