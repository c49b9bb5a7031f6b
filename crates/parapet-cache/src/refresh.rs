//! Background refresh for `stale-while-revalidate` (RFC 5861 §3): at most one per variant
//! at a time, on a bounded number of tasks.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use parapet_core::Personal;

use crate::StoredResponse;
use crate::conditional::validates;
use crate::flow::{Origin, refreshed, set_validators, store_or_pass};
use crate::shared::Shared;
use crate::status::{CacheStatus, Forward};

/// Starts a refresh of `stored` with the request that found it stale (a `GET` or `HEAD`,
/// whose body is empty), unless one is already running for the variant or every refresh
/// task is busy (a later request will try again).
pub(crate) fn spawn<S, ReqBody, B>(
    shared: &Arc<Shared>,
    mut inner: S,
    mut request: Request<ReqBody>,
    stored: &Arc<StoredResponse>,
) where
    S: Origin<ReqBody, B>,
    ReqBody: Send + 'static,
    B: Body<Data = Bytes, Error: Send + 'static> + Send + 'static,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let mut variant = stored.key.as_bytes().to_vec();
    variant.extend_from_slice(&crate::vary::encode(&stored.vary_values));
    let h = shared.flights.hash(&variant);
    let Ok(permit) = Arc::clone(&shared.refresh_permits).try_acquire_owned() else {
        return;
    };
    if !shared.start_refresh(h) {
        return;
    }
    shared.counter(|c| &c.refreshes);
    let shared = Arc::clone(shared);
    let stored = Arc::clone(stored);
    // A HEAD cannot refresh a GET's body.
    *request.method_mut() = http::Method::GET;
    // The refresh speaks for everyone: none of the requesting client's credentials go.
    request.headers_mut().remove(http::header::COOKIE);
    request.headers_mut().remove(http::header::AUTHORIZATION);
    let client = request.headers().clone();
    set_validators(request.headers_mut(), &stored);
    let personal = Personal::of(request.extensions_mut());
    runtime.spawn(async move {
        let _permit = permit;
        let requested = shared.now();
        let limit = shared
            .origin_timeout
            .unwrap_or(std::time::Duration::from_secs(30));
        let outcome = tokio::time::timeout(limit, inner.call(request)).await;
        // A refresh whose answer depended on the requesting client's session or token
        // speaks for that client only: it changes nothing stored.
        let personal =
            personal.is_marked() || matches!(&outcome, Ok(Ok(r)) if Personal::in_response(r));
        if let (false, Ok(Ok(response))) = (personal, outcome) {
            let received = shared.now();
            if response.status() == StatusCode::NOT_MODIFIED {
                if validates(response.headers(), &stored.headers) {
                    refreshed(
                        &shared,
                        &stored,
                        response.headers(),
                        requested,
                        received,
                        &client,
                    )
                    .await;
                    shared.counter(|c| &c.revalidated);
                }
            } else {
                let method = http::Method::GET;
                let status = CacheStatus::forward(Forward::Stale);
                let (response, _) = store_or_pass(
                    &shared,
                    stored.key.clone(),
                    &method,
                    &client,
                    requested,
                    received,
                    response,
                    None,
                    status,
                );
                // Reading the body to its end stores it.
                let mut body = std::pin::pin!(response.into_body());
                let drain = async { while let Some(Ok(_)) = body.frame().await {} };
                let _ = tokio::time::timeout(limit, drain).await;
            }
        }
        shared.end_refresh(h);
    });
}
