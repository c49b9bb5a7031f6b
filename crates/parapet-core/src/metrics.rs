//! Helpers for the `metrics` facade shared by the middlewares.

use std::sync::Arc;

static METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// A counter whose name and labels are built once, so counting on a hot path neither
/// builds nor hashes a key.
///
/// ```
/// use parapet_core::metrics::KeyedCounter;
///
/// let allowed = KeyedCounter::new(
///     "parapet_ratelimit_decisions_total",
///     &[("policy", "minute".into()), ("outcome", "allowed".into())],
/// );
/// allowed.increment();
/// ```
#[derive(Debug, Clone)]
pub struct KeyedCounter(metrics::Key);

impl KeyedCounter {
    /// The counter `name` with these labels.
    pub fn new(name: &'static str, labels: &[(&'static str, Arc<str>)]) -> Self {
        Self(metrics::Key::from_parts(
            name,
            labels
                .iter()
                .map(|(key, value)| {
                    metrics::Label::new(*key, metrics::SharedString::from_shared(value.clone()))
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// Adds one.
    pub fn increment(&self) {
        metrics::with_recorder(|recorder| {
            recorder.register_counter(&self.0, &METADATA).increment(1);
        });
    }
}
