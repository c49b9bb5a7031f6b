//! What refused and admitted requests are answered with: refusals and rate-limit fields.

pub(crate) mod grpc;
pub(crate) mod header_style;
pub(crate) mod headers;
pub(crate) mod rejection;
