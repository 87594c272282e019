//! Reports: one data model ([`model::Summary`]) and one writer per format.

pub mod model;

// TEMPORARY stand-ins until the report writers land (branch `report`).
/// Report error (stand-in).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReportError(String);
/// Writes summary.json (stand-in).
pub fn write_all(
    dir: &std::path::Path,
    s: &model::Summary,
) -> Result<Vec<std::path::PathBuf>, ReportError> {
    let p = dir.join("summary.json");
    let text = serde_json::to_string_pretty(s).map_err(|e| ReportError(e.to_string()))?;
    std::fs::write(&p, text).map_err(|e| ReportError(e.to_string()))?;
    Ok(vec![p])
}
/// Re-renders (stand-in).
pub fn rerender(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, ReportError> {
    Err(ReportError(format!("{}: not built yet", dir.display())))
}
/// Terminal text (stand-in).
pub mod text {
    /// Summary text (stand-in).
    pub fn terminal_summary(s: &super::model::Summary) -> String {
        format!(
            "{} requests, p99 {} us",
            s.overall.completed, s.overall.corrected.p99_us
        )
    }
}
