//! parapet
