//! The axum extractors.

#[cfg(feature = "axum")]
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
#[cfg(feature = "axum")]
use http::request::Parts;
#[cfg(feature = "axum")]
use serde::de::DeserializeOwned;

#[cfg(feature = "axum")]
use crate::guard::Anonymous;
#[cfg(feature = "axum")]
use crate::{JwtRejection, VerifiedToken};

/// The validated token's claims, read into `T`: an axum extractor (feature `axum`).
///
/// `Option<Claims<T>>` is `None` when an [`optional`](crate::JwtLayerBuilder::optional)
/// guard let a request without a token through. Claims that do not fit `T` are a 401
/// `invalid_token`; a route the guard does not cover is a 500 (a wiring mistake).
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use parapet_jwt::Claims;
///
/// #[derive(serde::Deserialize)]
/// struct User { sub: String, role: Option<String> }
///
/// async fn me(Claims(user): Claims<User>) -> String {
///     format!("{} ({})", user.sub, user.role.as_deref().unwrap_or("user"))
/// }
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Claims<T>(pub T);

#[cfg(feature = "axum")]
impl<T> std::ops::Deref for Claims<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(feature = "axum")]
fn token(parts: &Parts) -> Result<Option<&VerifiedToken>, JwtRejection> {
    match parts.extensions.get::<VerifiedToken>() {
        Some(token) => Ok(Some(token)),
        None if parts.extensions.get::<Anonymous>().is_some() => Ok(None),
        None => Err(JwtRejection::NotGuarded),
    }
}

#[cfg(feature = "axum")]
impl<T, S> FromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = JwtRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        token(parts)?
            .ok_or(JwtRejection::Missing)?
            .claims()
            .map(Claims)
    }
}

#[cfg(feature = "axum")]
impl<T, S> OptionalFromRequestParts<S> for Claims<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = JwtRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        token(parts)?.map(|t| t.claims().map(Claims)).transpose()
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = JwtRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        token(parts)?.cloned().ok_or(JwtRejection::Missing)
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = JwtRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(token(parts)?.cloned())
    }
}
