//! The tower service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use parapet_core::{Personal, RequestHead};
use tower_service::Service;

use crate::session::RequestCookie;
use crate::shared::Shared;
use crate::{ResponseFuture, Session};

/// The service of [`SessionLayer`](crate::SessionLayer): puts a [`Session`] in each
/// request's extensions and, after the inner service answered, writes what the handler
/// changed and sets or removes the cookie.
///
/// Named as tower-http names its services (`Foo<S>` beside `FooLayer`), in the plural
/// because [`Session`] is the handler's extractor.
#[derive(Clone)]
pub struct Sessions<S> {
    pub(crate) inner: S,
    pub(crate) shared: Arc<Shared>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Sessions<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<parapet_core::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let shared = &self.shared;
        // The cookie is read when a handler asks for the session, not before: an untouched
        // request only keeps its (one, usually) `Cookie` line.
        let mut lines = request.headers().get_all(http::header::COOKIE).iter();
        let id = match (lines.next(), lines.next()) {
            (None, _) => RequestCookie::Absent,
            (Some(line), None) => RequestCookie::Line(line.clone()),
            _ => RequestCookie::Parsed(shared.cookie_id(request.headers())),
        };
        let ip = shared.client(&RequestHead::of(&request));
        let user_agent = Shared::user_agent(request.headers());
        let personal = Personal::of(request.extensions_mut());
        let session = Session::new(Arc::clone(shared), id, ip, user_agent, personal);
        request.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(request), session)
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for Sessions<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}
