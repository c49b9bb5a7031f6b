//! The guard's configuration and its decision for one request.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::HeaderMap;

use crate::keys::KeyRing;
use crate::revocations::{Check, unix_ms};
use crate::verifier::{self, Failure, Rules};
use crate::{JwtRejection, Revocations, TokenSource, VerifiedToken};

pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<VerifiedToken, JwtRejection>> + Send>>;

/// A check of the application's own on a verified token (`JwtLayerBuilder::check`).
pub(crate) type ClaimCheck = Arc<dyn Fn(&VerifiedToken) -> Result<(), JwtRejection> + Send + Sync>;

/// Shapes the guard's refusals (`JwtLayerBuilder::refusal`).
pub(crate) type Refusal = Arc<
    dyn Fn(&JwtRejection, http::Response<bytes::Bytes>) -> http::Response<bytes::Bytes>
        + Send
        + Sync,
>;

/// Where the keys come from.
pub(crate) enum KeySource {
    Static(KeyRing),
    #[cfg(feature = "jwks-fetch")]
    Fetched(Arc<crate::jwks::Jwks>),
}

pub(crate) struct Guard {
    pub(crate) keys: KeySource,
    pub(crate) rules: Rules,
    pub(crate) source: TokenSource,
    pub(crate) max_bytes: usize,
    pub(crate) realm: Option<std::sync::Arc<str>>,
    pub(crate) revocations: Option<Revocations>,
    pub(crate) optional: bool,
    pub(crate) checks: Vec<ClaimCheck>,
    pub(crate) refusal: Option<Refusal>,
}

/// Marks a request an optional guard let through without a token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anonymous;

/// What to do with a request.
pub(crate) enum Decision {
    /// Let it through, with its token (none: anonymous on an optional guard).
    Pass(Option<VerifiedToken>),
    Reject(JwtRejection),
    /// A key set must be fetched or Redis asked first.
    Later(Pending),
}

impl Guard {
    pub(crate) fn decide(self: &Arc<Self>, headers: &HeaderMap) -> Decision {
        let token = match self.source.extract(headers, self.max_bytes) {
            Ok(Some(token)) => token,
            Ok(None) if self.optional => {
                crate::metrics::request("anonymous");
                return Decision::Pass(None);
            }
            Ok(None) => return reject(JwtRejection::Missing),
            Err(rejection) => return reject(rejection),
        };
        let now = unix_ms() as f64 / 1000.0;
        match &self.keys {
            KeySource::Static(ring) => match verifier::verify(&token, ring, &self.rules, now) {
                Ok(verified) => self.revocation(verified),
                Err(Failure::Reject(rejection)) => reject(rejection),
                Err(Failure::UnknownKey) => reject(JwtRejection::InvalidToken("unknown key")),
            },
            #[cfg(feature = "jwks-fetch")]
            KeySource::Fetched(jwks) => {
                match verifier::verify(&token, &jwks.ring(), &self.rules, now) {
                    Ok(verified) => self.revocation(verified),
                    Err(Failure::Reject(rejection)) => reject(rejection),
                    Err(Failure::UnknownKey) => {
                        let (guard, jwks, token) = (self.clone(), jwks.clone(), token.into_owned());
                        Decision::Later(Box::pin(async move {
                            jwks.refresh_for(verifier::kid(&token).as_deref()).await;
                            let now = unix_ms() as f64 / 1000.0;
                            let verified =
                                match verifier::verify(&token, &jwks.ring(), &guard.rules, now) {
                                    Ok(verified) => verified,
                                    Err(Failure::Reject(rejection)) => {
                                        return Err(counted(rejection));
                                    }
                                    Err(Failure::UnknownKey) => {
                                        return Err(counted(JwtRejection::InvalidToken(
                                            "unknown key",
                                        )));
                                    }
                                };
                            match guard.revocation(verified) {
                                Decision::Pass(Some(token)) => Ok(token),
                                Decision::Pass(None) => Err(JwtRejection::Missing),
                                Decision::Reject(rejection) => Err(rejection),
                                Decision::Later(pending) => pending.await,
                            }
                        }))
                    }
                }
            }
        }
    }

    /// The response that refuses a request for `rejection`, shaped by the application's
    /// hook if it gave one.
    pub(crate) fn refuse(
        &self,
        rejection: &JwtRejection,
        grpc: bool,
    ) -> http::Response<bytes::Bytes> {
        let response = rejection.response(self.realm.as_deref(), grpc);
        match &self.refusal {
            Some(refusal) if !grpc => refusal(rejection, response),
            _ => response,
        }
    }

    /// The application's checks, then the revocation check, of a valid token.
    fn revocation(&self, token: VerifiedToken) -> Decision {
        for check in &self.checks {
            if let Err(rejection) = check(&token) {
                return reject(rejection);
            }
        }
        let Some(revocations) = &self.revocations else {
            return allow(token);
        };
        match revocations.check(&token) {
            Check::Allowed => allow(token),
            Check::Revoked => reject(JwtRejection::Revoked),
            Check::Unavailable => reject(JwtRejection::Unavailable),
            Check::AskStore(call) => Decision::Later(Box::pin(async move {
                match call.await {
                    Ok(false) => {
                        crate::metrics::request("allowed");
                        Ok(token)
                    }
                    Ok(true) => Err(counted(JwtRejection::Revoked)),
                    Err(e) => {
                        crate::metrics::store_error("check", &e);
                        Err(counted(JwtRejection::Unavailable))
                    }
                }
            })),
        }
    }
}

fn allow(token: VerifiedToken) -> Decision {
    crate::metrics::request("allowed");
    Decision::Pass(Some(token))
}

fn counted(rejection: JwtRejection) -> JwtRejection {
    crate::metrics::request(rejection.label());
    rejection
}

fn reject(rejection: JwtRejection) -> Decision {
    Decision::Reject(counted(rejection))
}
