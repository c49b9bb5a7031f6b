//! A JWKS document fetched from a URL and kept fresh (feature `jwks-fetch`).

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use parapet_core::ConfigError;

use crate::keys::KeyRing;

/// The largest JWKS document read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct JwksOptions {
    pub(crate) url: String,
    pub(crate) refresh: Duration,
    pub(crate) min_refetch: Duration,
    pub(crate) timeout: Duration,
}

impl JwksOptions {
    pub(crate) fn new(url: String) -> Self {
        Self {
            url,
            refresh: Duration::from_secs(300),
            min_refetch: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

pub(crate) struct Jwks {
    options: JwksOptions,
    client: reqwest::Client,
    ring: RwLock<Arc<KeyRing>>,
    /// When the last fetch started; held across a fetch, so fetches never overlap.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    refresher: std::sync::OnceLock<tokio::task::AbortHandle>,
}

impl Jwks {
    pub(crate) fn new(options: JwksOptions) -> Result<Arc<Self>, ConfigError> {
        // Keys over plain HTTP can be swapped on the way: https, or a loopback address.
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|p| {
                options
                    .url
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with([':', '/']))
            });
        if !(options.url.starts_with("https://") || loopback) {
            return Err(ConfigError(
                "the JWKS URL must be https (plain http only on a loopback address)".into(),
            ));
        }
        if options.refresh.is_zero() {
            return Err(ConfigError(
                "the JWKS refresh interval must be positive".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ConfigError(format!("JWKS client: {e}")))?;
        Ok(Arc::new(Self {
            options,
            client,
            ring: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
            refresher: std::sync::OnceLock::new(),
        }))
    }

    /// The keys as last fetched; starts the background refresh on first use.
    pub(crate) fn ring(self: &Arc<Self>) -> Arc<KeyRing> {
        if self.refresher.get().is_none()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let weak = Arc::downgrade(self);
            self.refresher
                .get_or_init(|| runtime.spawn(refresh_forever(weak)).abort_handle());
        }
        self.ring
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Fetches again for an unknown `kid`, unless another fetch just did (or is doing) it,
    /// or the last fetch is more recent than the minimum interval.
    pub(crate) async fn refresh_for(self: &Arc<Self>, kid: Option<&str>) {
        let mut last = self.last_fetch.lock().await;
        if self.ring().knows(kid) {
            return;
        }
        if last.is_some_and(|at| at.elapsed() < self.options.min_refetch) {
            return;
        }
        *last = Some(Instant::now());
        self.fetch().await;
    }

    async fn fetch(&self) {
        match self.download().await {
            Ok(ring) => {
                crate::metrics::jwks_fetch(true);
                *self
                    .ring
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(ring);
            }
            Err(e) => {
                crate::metrics::jwks_fetch(false);
                tracing::warn!(url = %self.options.url, "JWKS fetch failed, keeping the last keys: {e}");
            }
        }
    }

    async fn download(&self) -> Result<KeyRing, String> {
        let mut response = self
            .client
            .get(&self.options.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err("the document is larger than 1 MiB".into());
            }
            body.extend_from_slice(&chunk);
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| format!("not a JWKS: {e}"))?;
        let ring = KeyRing::from_jwks(&set).map_err(|e| e.0)?;
        if ring.is_empty() {
            return Err("no usable signature key".into());
        }
        Ok(ring)
    }
}

impl Drop for Jwks {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.get() {
            task.abort();
        }
    }
}

/// Fetches now, then every `refresh`, while the guard lives.
async fn refresh_forever(jwks: Weak<Jwks>) {
    loop {
        let Some(strong) = jwks.upgrade() else {
            return;
        };
        let every = strong.options.refresh;
        {
            let mut last = strong.last_fetch.lock().await;
            *last = Some(Instant::now());
            strong.fetch().await;
        }
        drop(strong);
        tokio::time::sleep(every).await;
    }
}
