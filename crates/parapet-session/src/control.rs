//! Listing and revoking sessions outside a request.

use std::sync::Arc;

use crate::session_key::unhex;
use crate::shared::Shared;
use crate::store::Revoke;
use crate::{SessionError, SessionInfo};

/// Lists and revokes any user's sessions, from an admin endpoint or a job: revocation
/// takes effect on every instance at once with a [`RedisStore`](crate::RedisStore), as
/// every request reads its session from Redis. From [`SessionLayer::control`](crate::SessionLayer::control).
#[derive(Clone)]
pub struct SessionControl {
    pub(crate) shared: Arc<Shared>,
}

impl SessionControl {
    /// The live sessions of `user`, oldest first.
    pub async fn list(&self, user: &str) -> Result<Vec<SessionInfo>, SessionError> {
        let group = self.shared.store.user_group(user);
        self.shared
            .call("list", self.shared.store.list(&group))
            .await
    }

    /// Ends the session of `user` with this handle; answers whether it was live.
    pub async fn revoke(&self, user: &str, handle: &str) -> Result<bool, SessionError> {
        let Some(id) = unhex(handle) else {
            return Ok(false);
        };
        let group = self.shared.store.user_group(user);
        let ended = self
            .shared
            .call("revoke", self.shared.store.revoke(&group, Revoke::One(id)))
            .await?;
        Ok(ended > 0)
    }

    /// Ends every session of `user` ("log out everywhere"); answers how many.
    pub async fn revoke_all(&self, user: &str) -> Result<u64, SessionError> {
        let group = self.shared.store.user_group(user);
        self.shared
            .call("revoke", self.shared.store.revoke(&group, Revoke::All))
            .await
    }
}

impl std::fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionControl").finish_non_exhaustive()
    }
}
