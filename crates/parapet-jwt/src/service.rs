//! The tower service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use parapet_core::grpc::is_grpc;
use parapet_core::{Personal, PersonalInput, ResponseBody};
use tower_service::Service;

use crate::future::add_realm;
use crate::guard::{Anonymous, Decision, Guard};
use crate::{ResponseFuture, VerifiedToken};

/// The service of a [`JwtLayer`](crate::JwtLayer): checks the request's token, then calls
/// the inner service with the [`VerifiedToken`](crate::VerifiedToken) in the request's
/// extensions, or answers the refusal itself.
#[derive(Clone)]
pub struct Jwt<S> {
    pub(crate) inner: S,
    pub(crate) guard: Arc<Guard>,
}

impl<S> Jwt<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Jwt<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(&request);
        match self.guard.decide(request.headers()) {
            Decision::Pass(Some(token)) => {
                let personal = verified(&mut request, token);
                ResponseFuture::inner(
                    self.inner.call(request),
                    Some(personal),
                    self.guard.realm.clone(),
                )
            }
            Decision::Pass(None) => {
                request.extensions_mut().insert(Anonymous);
                ResponseFuture::inner(self.inner.call(request), None, self.guard.realm.clone())
            }
            Decision::Reject(rejection) => {
                ResponseFuture::ready(self.guard.refuse(&rejection, grpc))
            }
            Decision::Later(pending) => {
                // The service that was polled ready serves this request; a clone stays.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let guard = self.guard.clone();
                ResponseFuture::boxed(async move {
                    match pending.await {
                        Ok(token) => {
                            let personal = verified(&mut request, token);
                            let mut response = inner.call(request).await?;
                            personal.carry(&mut response);
                            if let Some(realm) = &guard.realm {
                                add_realm(&mut response, realm);
                            }
                            Ok(response.map(ResponseBody::inner))
                        }
                        Err(rejection) => {
                            Ok(guard.refuse(&rejection, grpc).map(ResponseBody::full))
                        }
                    }
                })
            }
        }
    }
}

/// Hands the verified token to the inner service and marks the request: what it answers
/// now depends on this client's token, so no cache, on either side of the guard, may store
/// it for others.
fn verified<B>(request: &mut Request<B>, token: VerifiedToken) -> Personal {
    let personal = Personal::of(request.extensions_mut());
    personal.mark(PersonalInput::Token);
    request.extensions_mut().insert(token);
    personal
}
