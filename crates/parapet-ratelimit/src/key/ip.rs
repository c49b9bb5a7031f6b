//! The IP extractors of `parapet-core` as rate-limit keys.

use parapet_core::{ClientIp, ClientIpError, PeerIp};

use super::{KeyExtractor, NoKey};
use crate::{RequestHead, Subject};

fn no_key(error: ClientIpError) -> NoKey {
    match error {
        ClientIpError::NoPeer => NoKey::Misconfigured(
            "the request carries no peer address: serve axum with \
             into_make_service_with_connect_info::<SocketAddr>() and enable parapet's `axum` \
             feature, insert the SocketAddr into the extensions in a hyper service, or enable \
             the `tonic` feature",
        ),
        _ => NoKey::Malformed,
    }
}

impl KeyExtractor for PeerIp {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let ip = self.ip(head).map_err(no_key)?;
        Ok(self.subject(ip))
    }

    fn ip_subject(&self, ip: std::net::IpAddr) -> Option<Subject> {
        Some(self.subject(ip))
    }
}

impl KeyExtractor for ClientIp {
    fn extract(&self, head: &RequestHead<'_>) -> Result<Subject, NoKey> {
        let ip = self.ip(head).map_err(no_key)?;
        Ok(self.subject(ip))
    }

    fn ip_subject(&self, ip: std::net::IpAddr) -> Option<Subject> {
        Some(self.subject(ip))
    }
}
