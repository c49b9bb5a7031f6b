//! Policies and the algorithm: quotas, named policies, sets of them, GCRA, decisions.

pub(crate) mod algorithm;
pub(crate) mod decision;
pub(crate) mod gcra;
pub(crate) mod policy;
pub(crate) mod policy_set;
pub(crate) mod policy_state;
pub(crate) mod quota;
pub(crate) mod sliding_log;
