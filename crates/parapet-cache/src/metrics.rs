//! Metric names (the `metrics` facade: install any recorder to collect them).

/// Counter: requests, labelled `result`: `hit`, `stale` (served stale), `miss`,
/// `revalidated` (a stale or `no-cache` entry validated by the origin), `bypass`, `pass`
/// (a method the cache does not serve).
pub const REQUESTS: &str = "parapet_cache_requests_total";
/// Counter: responses stored.
pub const STORED: &str = "parapet_cache_stored_total";
/// Counter: store failures, labelled `op` (`lookup`, `put`, `remove`) and `kind`
/// (`timeout`, `redis`, …, `circuit_open`). A failed lookup is a miss; a failed put leaves
/// the response unstored; neither reaches the client.
pub const STORE_ERRORS: &str = "parapet_cache_store_errors_total";
/// Counter: requests answered while another request fetched the same variant.
pub const COLLAPSED: &str = "parapet_cache_collapsed_total";
/// Counter: responses that streamed through uncached because the bytes in flight reached
/// the layer's `max_in_flight_bytes`.
pub const IN_FLIGHT_FULL: &str = "parapet_cache_in_flight_full_total";

/// A request's `result` label in [`REQUESTS`].
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    Hit,
    Stale,
    Miss,
    Revalidated,
    Bypass,
    Pass,
}

pub(crate) fn request(result: Outcome) {
    // Literal labels make a static key: counting allocates nothing.
    let counter = match result {
        Outcome::Hit => metrics::counter!(REQUESTS, "result" => "hit"),
        Outcome::Stale => metrics::counter!(REQUESTS, "result" => "stale"),
        Outcome::Miss => metrics::counter!(REQUESTS, "result" => "miss"),
        Outcome::Revalidated => metrics::counter!(REQUESTS, "result" => "revalidated"),
        Outcome::Bypass => metrics::counter!(REQUESTS, "result" => "bypass"),
        Outcome::Pass => metrics::counter!(REQUESTS, "result" => "pass"),
    };
    counter.increment(1);
}

pub(crate) fn in_flight_full() {
    metrics::counter!(IN_FLIGHT_FULL).increment(1);
}
