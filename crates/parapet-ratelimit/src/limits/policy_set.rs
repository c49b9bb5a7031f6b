//! The policies one request is charged against, all or nothing.

use std::fmt;
use std::sync::Arc;

use http::HeaderValue;

use crate::{Policy, RateLimitError};

/// At most this many policies in one set: each is one key in the one script call.
const MAX_POLICIES: usize = crate::gcra::MAX_POLICIES;

/// One or more policies charged together: a request is admitted only if every policy admits
/// it, and then every policy is charged; a refusal charges none.
///
/// Cheap to clone; build sets once and hand clones to a resolver.
///
/// ```
/// use parapet_ratelimit::{Policy, PolicySet, Quota};
///
/// let set = PolicySet::new([
///     Policy::new("minute", Quota::per_minute(100))?,
///     Policy::new("hour", Quota::per_hour(1000))?,
/// ])?;
/// assert_eq!(set.policies().len(), 2);
/// # Ok::<(), parapet_ratelimit::RateLimitError>(())
/// ```
#[derive(Clone)]
pub struct PolicySet(Arc<Inner>);

struct Inner {
    policies: Box<[Policy]>,
    id: u64,
    min_burst: (u32, usize),
    ietf_policy_header: HeaderValue,
    ietf_name_items: Box<[String]>,
}

impl PolicySet {
    /// A set of 1 to 16 policies with distinct names.
    pub fn new(policies: impl IntoIterator<Item = Policy>) -> Result<Self, RateLimitError> {
        let policies: Box<[Policy]> = policies.into_iter().collect();
        if policies.is_empty() {
            return Err(RateLimitError::InvalidPolicySet(
                "a set needs at least one policy",
            ));
        }
        if policies.len() > MAX_POLICIES {
            return Err(RateLimitError::InvalidPolicySet(
                "a set holds at most 16 policies",
            ));
        }
        for (i, policy) in policies.iter().enumerate() {
            if policies[..i].iter().any(|p| p.name() == policy.name()) {
                return Err(RateLimitError::InvalidPolicySet(
                    "two policies share a name",
                ));
            }
        }
        let id = policies.iter().fold(0xcbf2_9ce4_8422_2325_u64, |acc, p| {
            (acc ^ p.id()).wrapping_mul(0x0100_0000_01b3)
        });
        // Shadow policies never refuse, not even a cost above their burst.
        let min_burst = policies
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.is_shadow())
            .map(|(i, p)| (p.quota().burst_size(), i))
            .min()
            .unwrap_or((u32::MAX, 0));
        let ietf_policy_header = crate::headers::policy_header(&policies);
        let ietf_name_items = policies.iter().map(crate::headers::name_item).collect();
        Ok(Self(Arc::new(Inner {
            policies,
            id,
            min_burst,
            ietf_policy_header,
            ietf_name_items,
        })))
    }

    /// The policies, in the order given.
    pub fn policies(&self) -> &[Policy] {
        &self.0.policies
    }

    pub(crate) fn id(&self) -> u64 {
        self.0.id
    }

    /// The smallest burst of the enforced policies, and the policy that has it (`u32::MAX`
    /// and the first policy when every policy is a shadow).
    pub(crate) fn min_burst(&self) -> (u32, &Policy) {
        let (burst, index) = self.0.min_burst;
        (burst, &self.0.policies[index])
    }

    /// The `RateLimit-Policy` field value, rendered once.
    pub(crate) fn ietf_policy_header(&self) -> &HeaderValue {
        &self.0.ietf_policy_header
    }

    /// Each policy's name as a serialized sf-string item, in order.
    pub(crate) fn ietf_name_items(&self) -> &[String] {
        &self.0.ietf_name_items
    }
}

impl From<Policy> for PolicySet {
    fn from(policy: Policy) -> Self {
        // One policy is always a valid set.
        match Self::new([policy]) {
            Ok(set) => set,
            Err(_) => unreachable!("a single policy is a valid set"),
        }
    }
}

impl fmt::Debug for PolicySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.policies()).finish()
    }
}
