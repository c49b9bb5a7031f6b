//! The layer's configuration, shared by its services and sessions.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cookie::{Cookie, SameSite};
use http::{HeaderMap, HeaderValue};
use parapet_core::{ClientIp, PeerIp, RequestHead, StoreCall};

use crate::id::SessionId;
use crate::{OverLimit, SessionError, SessionRules, SessionStore};

/// Most cookies of our name looked at in one request.
const MAX_CANDIDATES: usize = 8;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) rules: SessionRules,
    pub(crate) cookie: CookieConfig,
    pub(crate) rotate_every: Option<Duration>,
    pub(crate) rotation_grace: Duration,
    pub(crate) max_sessions: Option<(u32, OverLimit)>,
    pub(crate) store_timeout: Duration,
    pub(crate) client_ip: Option<ClientIp>,
    pub(crate) peer_ip: PeerIp,
}

#[derive(Debug, Clone)]
pub(crate) struct CookieConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) same_site: SameSite,
}

impl Shared {
    /// A store call with the layer's deadline; failures counted by operation.
    pub(crate) async fn call<T>(
        &self,
        op: &'static str,
        call: StoreCall<T>,
    ) -> Result<T, SessionError> {
        call.await_within(self.store_timeout)
            .await
            .inspect_err(|e| crate::metrics::store_error(op, e))
            .map_err(SessionError::Store)
    }

    /// The session id of the request's cookies: the first cookie of our name that holds a
    /// well-formed id. Unparsable pairs and malformed values are skipped; a byte that is not
    /// ASCII is read as U+FFFD (`parapet_core::cookie_lines`), so it hides no other pair.
    pub(crate) fn cookie_id(&self, headers: &HeaderMap) -> Option<SessionId> {
        self.cookie_id_in(headers.get_all(http::header::COOKIE).iter())
    }

    /// The session id among these `Cookie` lines.
    pub(crate) fn cookie_id_in<'a>(
        &self,
        lines: impl Iterator<Item = &'a HeaderValue>,
    ) -> Option<SessionId> {
        // A byte that is not ASCII in another cookie does not hide the session.
        lines
            .map(parapet_core::cookie_line)
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|c| c.name() == self.cookie.name)
            .take(MAX_CANDIDATES)
            .find_map(|c| SessionId::parse(c.value()))
    }

    /// The client address to record for a new session.
    pub(crate) fn client(&self, head: &RequestHead<'_>) -> Option<IpAddr> {
        match &self.client_ip {
            Some(client_ip) => client_ip.client(head).ok(),
            None => self.peer_ip.peer(head.extensions),
        }
    }

    /// `Set-Cookie` for `id`, or the removal of the cookie.
    pub(crate) fn set_cookie(&self, id: Option<&SessionId>) -> Option<HeaderValue> {
        let c = &self.cookie;
        let mut cookie = Cookie::build((
            c.name.clone(),
            id.map(SessionId::encode).unwrap_or_default(),
        ))
        .path(c.path.clone())
        .http_only(true)
        .secure(c.secure)
        .same_site(c.same_site);
        if let Some(domain) = &c.domain {
            cookie = cookie.domain(domain.clone());
        }
        let mut cookie = cookie.build();
        match id {
            Some(_) => {
                let seconds =
                    i64::try_from(self.rules.absolute_timeout.as_secs()).unwrap_or(i64::MAX);
                cookie.set_max_age(cookie::time::Duration::seconds(seconds));
            }
            None => cookie.make_removal(),
        }
        HeaderValue::from_str(&cookie.to_string()).ok()
    }

    pub(crate) fn user_agent(headers: &HeaderMap) -> Option<HeaderValue> {
        headers.get(http::header::USER_AGENT).cloned()
    }
}
