//! Options of the session layer.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use cookie::SameSite;
use parapet_core::{ClientIp, ConfigError, PeerIp};

use crate::shared::{CookieConfig, Shared};
use crate::{MemoryStore, OverLimit, SessionLayer, SessionRules, SessionStore};

/// Builds a [`SessionLayer`]. Every option has a secure default; invalid combinations are
/// a [`ConfigError`] from [`build`](Self::build), never a failure at request time.
///
/// ```
/// use std::time::Duration;
/// use parapet_session::{MemoryStore, OverLimit, SessionLayer};
///
/// let layer = SessionLayer::builder()
///     .store(MemoryStore::new())
///     .idle_timeout(Duration::from_secs(30 * 60))
///     .absolute_timeout(Duration::from_secs(12 * 3600))
///     .max_sessions(5, OverLimit::EvictOldest)
///     .build()?;
/// # Ok::<(), parapet_core::ConfigError>(())
/// ```
pub struct SessionLayerBuilder {
    store: Arc<dyn SessionStore>,
    rules: SessionRules,
    cookie: CookieConfig,
    host_prefix: bool,
    rotate_every: Option<Duration>,
    rotation_grace: Duration,
    max_sessions: Option<(u32, OverLimit)>,
    store_timeout: Duration,
    client_ip: Option<ClientIp>,
    peer_ip: PeerIp,
}

impl Default for SessionLayerBuilder {
    fn default() -> Self {
        Self {
            store: Arc::new(MemoryStore::new()),
            rules: SessionRules {
                idle_timeout: Duration::from_secs(30 * 60),
                absolute_timeout: Duration::from_secs(12 * 3600),
                touch_after: Duration::from_secs(60),
                max_session_bytes: 64 * 1024,
            },
            cookie: CookieConfig {
                name: "session".into(),
                path: "/".into(),
                domain: None,
                secure: true,
                same_site: SameSite::Lax,
            },
            host_prefix: true,
            rotate_every: None,
            rotation_grace: Duration::from_secs(10),
            max_sessions: Some((100, OverLimit::EvictOldest)),
            store_timeout: Duration::from_millis(100),
            client_ip: None,
            peer_ip: PeerIp::new(),
        }
    }
}

impl SessionLayerBuilder {
    /// Where sessions live (default: a [`MemoryStore`] of 100,000 sessions). Use a
    /// [`RedisStore`](crate::RedisStore) when the service runs on more than one instance.
    #[must_use]
    pub fn store(mut self, store: impl SessionStore) -> Self {
        self.store = Arc::new(store);
        self
    }

    /// A session unused for this long ends (default 30 minutes).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.rules.idle_timeout = timeout;
        self
    }

    /// A session ends this long after login or creation, however much it is used
    /// (default 12 hours). Also the cookie's `Max-Age`.
    #[must_use]
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.rules.absolute_timeout = timeout;
        self
    }

    /// A read moves the idle expiry only when the last move is at least this old (default
    /// 60 s, at most half the idle timeout): a session read on every request is not
    /// written on every request. The idle timeout is thus honoured to within this.
    #[must_use]
    pub fn touch_after(mut self, interval: Duration) -> Self {
        self.rules.touch_after = interval;
        self
    }

    /// Most bytes of field names plus JSON values in one session (default 64 KiB).
    /// A write past it fails with [`SessionError::TooLarge`](crate::SessionError) (413).
    #[must_use]
    pub fn max_session_bytes(mut self, bytes: usize) -> Self {
        self.rules.max_session_bytes = bytes;
        self
    }

    /// The cookie's name (default `session`), given the `__Host-` prefix unless
    /// [`host_prefix(false)`](Self::host_prefix): `__Host-session` by default.
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie.name = name.into();
        self
    }

    /// The cookie's `Path` (default `/`; another needs [`host_prefix(false)`](Self::host_prefix)).
    #[must_use]
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: this host only; one needs
    /// [`host_prefix(false)`](Self::host_prefix)).
    #[must_use]
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie.domain = Some(domain.into());
        self
    }

    /// The cookie's `SameSite` (default `Lax`: sent on top-level navigations from other
    /// sites, so OAuth/OIDC redirect logins work; `Strict` breaks them).
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.cookie.same_site = same_site;
        self
    }

    /// Whether the cookie is named `__Host-<name>` (default: yes). The browser keeps such a
    /// cookie only if it is `Secure`, has `Path=/` and no `Domain` (RFC 6265bis §4.1.3.2), so
    /// a sibling subdomain cannot plant a session id for this host (cookie tossing: the
    /// victim would be logged into the attacker's session, or logged out again and again).
    /// Turn it off only to share the cookie across subdomains, under another path, or over
    /// plain HTTP on a host other than `localhost`.
    #[must_use]
    pub fn host_prefix(mut self, on: bool) -> Self {
        self.host_prefix = on;
        self
    }

    /// Drops `Secure` from the cookie (and needs [`host_prefix(false)`](Self::host_prefix)),
    /// for plain-HTTP development on a host other than `localhost` only. curl and browsers
    /// treat `http://localhost` as secure and keep `Secure` and `__Host-` cookies there, so
    /// local development does not need this. Without it, over plain HTTP elsewhere, the
    /// client drops the cookie and every request starts a new session.
    #[must_use]
    pub fn insecure_cookie(mut self) -> Self {
        self.cookie.secure = false;
        self
    }

    /// Rotates a logged-in session's id when it is older than this (default: never),
    /// letting the old id work for the [`rotation_grace`](Self::rotation_grace) so that
    /// requests already in flight with it do not fail.
    #[must_use]
    pub fn rotate_every(mut self, interval: Duration) -> Self {
        self.rotate_every = Some(interval);
        self
    }

    /// How long an id replaced by periodic rotation still works (default 10 s, at most
    /// 5 minutes). Rotation at login and [`Session::rotate`](crate::Session::rotate) have
    /// no grace: the old id dies at once.
    #[must_use]
    pub fn rotation_grace(mut self, grace: Duration) -> Self {
        self.rotation_grace = grace;
        self
    }

    /// At most `limit` live sessions per user, and what a login beyond it does (default:
    /// 100, [`OverLimit::EvictOldest`]). The bound also keeps each user's index, which a
    /// login scans, small.
    #[must_use]
    pub fn max_sessions(mut self, limit: u32, policy: OverLimit) -> Self {
        self.max_sessions = Some((limit, policy));
        self
    }

    /// The deadline of each store call (default 100 ms). Past it the request gets a 503;
    /// nothing is assumed about the session.
    #[must_use]
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// How the client address recorded with a session is found: the same [`ClientIp`] the
    /// rate limiter keys on, behind trusted proxies. Default: the TCP peer ([`PeerIp`]).
    #[must_use]
    pub fn client_ip(mut self, client_ip: ClientIp) -> Self {
        self.client_ip = Some(client_ip);
        self
    }

    /// Reads the TCP peer with this [`PeerIp`] (default: axum's or tonic's connect info).
    #[must_use]
    pub fn peer_ip(mut self, peer_ip: PeerIp) -> Self {
        self.peer_ip = peer_ip;
        self
    }

    /// The layer, or what is wrong with the options.
    pub fn build(self) -> Result<SessionLayer, ConfigError> {
        let err = |m: &str| Err(ConfigError(m.into()));
        let rules = SessionRules {
            touch_after: self.rules.touch_after.min(self.rules.idle_timeout / 2),
            ..self.rules
        };
        if rules.idle_timeout < Duration::from_secs(1) {
            return err("idle_timeout must be at least 1 s");
        }
        if rules.absolute_timeout < rules.idle_timeout {
            return err("absolute_timeout must be at least idle_timeout");
        }
        if rules.max_session_bytes == 0 {
            return err("max_session_bytes must be above zero");
        }
        // RFC 6265bis §5.6.1: user agents cap a cookie's lifetime at 400 days.
        if rules.absolute_timeout > Duration::from_secs(400 * 86_400) {
            return err("absolute_timeout must be at most 400 days");
        }
        if self
            .rotate_every
            .is_some_and(|every| every <= self.rotation_grace)
        {
            // An id rotated again within its grace window would alias an alias.
            return err("rotate_every must be longer than rotation_grace");
        }
        if self.rotation_grace > Duration::from_secs(300) {
            return err("rotation_grace must be at most 5 minutes");
        }
        if self
            .rotate_every
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            return err("rotate_every must be at least 1 s");
        }
        if self.store_timeout.is_zero() {
            return err("store_timeout must be above zero");
        }
        let max_sessions = match self.max_sessions {
            None => None,
            Some((limit, policy)) => match NonZeroU32::new(limit) {
                Some(limit) => Some((limit.get(), policy)),
                None => return err("max_sessions must be at least 1"),
            },
        };
        let mut cookie = self.cookie;
        if !is_token(&cookie.name) {
            return err("cookie_name must be a non-empty token (RFC 6265 §4.1.1)");
        }
        if !is_attribute(&cookie.path) || !cookie.path.starts_with('/') {
            return err("cookie_path must start with '/' and hold no ';' or control character");
        }
        if cookie
            .domain
            .as_deref()
            .is_some_and(|d| !is_attribute(d) || d.is_empty())
        {
            return err("cookie_domain must hold no ';' or control character");
        }
        if cookie.same_site == SameSite::None && !cookie.secure {
            return err("SameSite=None needs a Secure cookie");
        }
        if self.host_prefix {
            if !cookie.secure || cookie.path != "/" || cookie.domain.is_some() {
                return err(
                    "a __Host- cookie must be Secure, with Path=/ and no Domain: call \
                     host_prefix(false) to use insecure_cookie, cookie_path or cookie_domain",
                );
            }
            cookie.name = format!("__Host-{}", cookie.name);
        }
        Ok(SessionLayer {
            shared: Arc::new(Shared {
                store: self.store,
                rules,
                cookie,
                rotate_every: self.rotate_every,
                rotation_grace: self.rotation_grace,
                max_sessions,
                store_timeout: self.store_timeout,
                client_ip: self.client_ip,
                peer_ip: self.peer_ip,
            }),
        })
    }
}

/// An RFC 6265 cookie-name token: visible ASCII but separators.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

fn is_attribute(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') && !value.contains(';')
}

impl std::fmt::Debug for SessionLayerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("rules", &self.rules)
            .field("cookie", &self.cookie)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(builder: SessionLayerBuilder, what: &str) {
        match builder.build() {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(!e.0.is_empty(), "{what}: an empty message"),
        }
    }

    fn built(builder: SessionLayerBuilder) -> SessionLayer {
        builder.build().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_defaults_build_and_are_secure() {
        let layer = built(SessionLayerBuilder::default());
        let shared = &layer.shared;
        assert!(shared.cookie.secure);
        assert_eq!(shared.cookie.same_site, SameSite::Lax);
        assert_eq!(shared.cookie.path, "/");
        assert_eq!(shared.cookie.name, "__Host-session");
        assert_eq!(shared.rules.touch_after, Duration::from_secs(60));
        assert_eq!(shared.max_sessions, Some((100, OverLimit::EvictOldest)));
        let plain = built(
            SessionLayer::builder()
                .host_prefix(false)
                .insecure_cookie()
                .cookie_path("/app"),
        );
        assert_eq!(plain.shared.cookie.name, "session");
        // touch_after is clamped to half the idle timeout.
        let short = built(SessionLayer::builder().idle_timeout(Duration::from_secs(10)));
        assert_eq!(short.shared.rules.touch_after, Duration::from_secs(5));
    }

    #[test]
    fn invalid_options_are_errors_at_build_time() {
        let b = SessionLayer::builder;
        fails(b().insecure_cookie(), "__Host- without Secure");
        fails(b().cookie_domain("example.com"), "__Host- with a Domain");
        fails(b().cookie_path("/app"), "__Host- with a Path");
        fails(b().cookie_name("a;b"), "a separator in the name");
        fails(b().cookie_name(""), "an empty name");
        fails(
            b().idle_timeout(Duration::from_millis(10)),
            "a sub-second idle timeout",
        );
        fails(
            b().idle_timeout(Duration::from_secs(60))
                .absolute_timeout(Duration::from_secs(30)),
            "absolute below idle",
        );
        fails(
            b().absolute_timeout(Duration::from_secs(500 * 86_400)),
            "past 400 days",
        );
        fails(
            b().rotate_every(Duration::from_secs(5))
                .rotation_grace(Duration::from_secs(10)),
            "rotation within the grace window",
        );
        fails(
            b().max_sessions(0, OverLimit::RejectNew),
            "a zero session limit",
        );
        fails(b().max_session_bytes(0), "a zero byte limit");
        fails(
            b().rotation_grace(Duration::from_secs(3600)),
            "an hour of grace",
        );
        fails(b().store_timeout(Duration::ZERO), "a zero deadline");
        let b = || SessionLayer::builder().host_prefix(false);
        fails(b().cookie_path("x"), "a relative path");
        fails(b().cookie_path("/a;b"), "a ';' in the path");
        fails(
            b().insecure_cookie().same_site(SameSite::None),
            "SameSite=None without Secure",
        );
    }
}
