//! A token that passed every check, as handlers see it.

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::JwtRejection;

/// A validated token: its signature, algorithm, times, issuer and audience checked, and not
/// revoked. The guard puts one in the request's extensions; with feature `axum` it is also
/// an extractor, and [`Claims<T>`](crate::Claims) reads the claims into your type.
///
/// It holds the token's decoded claims, never the token itself.
#[derive(Clone)]
pub struct VerifiedToken {
    pub(crate) payload: Bytes,
    pub(crate) iss: Option<Box<str>>,
    pub(crate) sub: Option<Box<str>>,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) iat: f64,
    pub(crate) exp: f64,
}

impl VerifiedToken {
    /// The claims read into `T` (any `Deserialize` type, `serde_json::Value` included).
    ///
    /// A claim set that does not fit `T` is the token's fault, not the server's: the error
    /// is a 401 `invalid_token`.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JwtRejection> {
        serde_json::from_slice(&self.payload)
            .map_err(|_| JwtRejection::InvalidToken("the claims do not have the expected shape"))
    }

    /// The claims as JSON text (UTF-8), as the token carried them.
    pub fn claims_json(&self) -> &[u8] {
        &self.payload
    }

    /// `iss`.
    pub fn issuer(&self) -> Option<&str> {
        self.iss.as_deref()
    }

    /// `sub`: the user that [`Revocations::revoke_user`](crate::Revocations::revoke_user)
    /// names.
    pub fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }

    /// `jti`: what [`Revocations::revoke_token`](crate::Revocations::revoke_token) needs.
    pub fn token_id(&self) -> Option<&str> {
        self.jti.as_deref()
    }

    /// `iat`, seconds since the Unix epoch.
    pub fn issued_at(&self) -> f64 {
        self.iat
    }

    /// `exp`, seconds since the Unix epoch.
    pub fn expires_at(&self) -> f64 {
        self.exp
    }

    /// True when the token grants `scope`: a word of the `scope` claim (a space-separated
    /// string, RFC 8693 §4.2) or an element of `scp` (a string or an array of strings).
    pub fn has_scope(&self, scope: &str) -> bool {
        #[derive(serde::Deserialize)]
        struct Scopes {
            #[serde(default)]
            scope: Option<String>,
            #[serde(default)]
            scp: Option<serde_json::Value>,
        }
        let Ok(scopes) = serde_json::from_slice::<Scopes>(&self.payload) else {
            return false;
        };
        let in_scope = scopes
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|w| w == scope));
        let in_scp = match scopes.scp {
            Some(serde_json::Value::String(s)) => s.split(' ').any(|w| w == scope),
            Some(serde_json::Value::Array(items)) => items.iter().any(|v| v == scope),
            _ => false,
        };
        in_scope || in_scp
    }

    /// `Ok` when the token grants `scope`, else the 403 `insufficient_scope` rejection
    /// (RFC 6750 §3.1) to return.
    ///
    /// ```
    /// # fn handler(token: parapet_jwt::VerifiedToken) -> Result<&'static str, parapet_jwt::JwtRejection> {
    /// token.require_scope("orders:write")?;
    /// Ok("written")
    /// # }
    /// ```
    pub fn require_scope(&self, scope: &'static str) -> Result<(), JwtRejection> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(JwtRejection::InsufficientScope(scope))
        }
    }
}

impl std::fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("jti", &self.jti)
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}
