//! The service of [`LoadUserLayer`](crate::LoadUserLayer).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::StatusCode;
use http::{Request, Response};
use parapet_core::{Problem, ResponseBody};
use tower_service::Service;

use crate::{Session, SessionUser};

type Boxed<B, E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody<B>>, E>> + Send>>;

/// The service of [`LoadUserLayer`](crate::LoadUserLayer): reads the session's user, puts
/// it in the request's extensions as a [`SessionUser`], then calls the inner service.
#[derive(Debug, Clone)]
pub struct LoadUser<S> {
    pub(crate) inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for LoadUser<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = Boxed<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready serves this request; a clone stays.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let Some(session) = request.extensions().get::<Session>().cloned() else {
                // No SessionLayer outside: a misconfiguration, answered with a 500 that says so.
                tracing::error!("LoadUserLayer on a route without a SessionLayer outside it");
                let problem =
                    Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "session layer missing");
                return Ok(problem.into_response().map(ResponseBody::full));
            };
            // Without a session id there is no user to read: the request stays untouched
            // (no store call, no `Vary: cookie`, still cacheable).
            if session.has_id() {
                match session.user().await {
                    Ok(Some(user)) => {
                        request.extensions_mut().insert(SessionUser::new(&user));
                    }
                    Ok(None) => {}
                    Err(error) => return Ok(error.response().map(ResponseBody::full)),
                }
            }
            let response = inner.call(request).await?;
            Ok(response.map(ResponseBody::inner))
        })
    }
}
