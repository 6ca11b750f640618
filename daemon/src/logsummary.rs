//! Log summaries: [`LogSummary`] (in `mipcast_proto`, so that protocol cores can hold one)
//! and one-line reports of refused state-file records.
pub use mipcast_proto::logsummary::{LogSummary, DEFAULT_INTERVAL, DEFAULT_LINES_PER_INTERVAL};

/// One WARN line for the state-file records a restore refused: how many, by reason, and
/// the first few home addresses (a tampered file may hold millions; the log gets one line).
pub fn log_restore_refusals(
    state_file: &std::path::Path,
    refused: &[mipcast_binding::RestoreRefusal],
) {
    if refused.is_empty() {
        return;
    }
    let (reasons, first) = summary(refused);
    tracing::warn!(
        file = %state_file.display(),
        refused = refused.len(),
        reasons,
        first = first.join(" "),
        "state file: records that no longer validate against the configuration were dropped, \
         not programmed"
    );
}

/// One WARN line for the bindings a reload's re-check withdrew (see
/// [`log_restore_refusals`]).
pub fn log_reload_refusals(dropped: &[mipcast_binding::RestoreRefusal]) {
    if dropped.is_empty() {
        return;
    }
    let (reasons, first) = summary(dropped);
    tracing::warn!(
        withdrawn = dropped.len(),
        reasons,
        first = first.join(" "),
        "reload: bindings that no longer validate against the new configuration were withdrawn"
    );
}

/// "reason=count ..." and the first few home addresses.
fn summary(refused: &[mipcast_binding::RestoreRefusal]) -> (String, Vec<String>) {
    let mut by_reason: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in refused {
        *by_reason.entry(r.reason).or_default() += 1;
    }
    let reasons = by_reason
        .iter()
        .map(|(reason, n)| format!("{reason}={n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let first = refused.iter().take(5).map(|r| r.hoa.to_string()).collect();
    (reasons, first)
}
