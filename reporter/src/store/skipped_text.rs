//! Text fields that metric-only stores left out, per store: the
//! `hostpulse_reporter_store_skipped_text_fields_total{store}` counter on
//! `/metrics`. A store counts a write's text fields once the write succeeded
//! (a retried write is not counted twice).

use std::collections::BTreeMap;
use std::sync::Mutex;

use hostpulse_ops::metrics::{Exposition, Kind};

static SKIPPED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

/// Counts `n` text fields `store` left out.
pub fn count(store: &'static str, n: u64) {
    if n == 0 {
        return;
    }
    let mut skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    let total = skipped.entry(store).or_default();
    if *total == 0 {
        tracing::info!(
            store,
            "this store holds numbers only: text fields (node_events messages) are left out and \
             counted in hostpulse_reporter_store_skipped_text_fields_total"
        );
    }
    *total += n;
}

/// Text fields left out so far, per store.
pub fn counts() -> Vec<(&'static str, u64)> {
    let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    skipped.iter().map(|(k, v)| (*k, *v)).collect()
}

/// Writes the counter's family to `/metrics` (every store that skipped any).
pub fn write_metrics(page: &mut Exposition) {
    const NAME: &str = "hostpulse_reporter_store_skipped_text_fields_total";
    page.family(
        NAME,
        Kind::Counter,
        "Text fields a store left out because it holds numbers only (VictoriaMetrics); the rest of each row was stored.",
    );
    for (store, n) in counts() {
        page.sample(NAME, &[("store", store)], n as f64);
    }
}
