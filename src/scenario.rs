//! Scenario files: the raw TOML model, validation into a [`Plan`], and the messages a user
//! reads when a file is wrong. Owns every check of user input; nothing past [`Plan`] re-checks.

pub mod plan;
pub mod template;

pub use plan::Plan;

// TEMPORARY stand-ins until the scenario loader lands (branch `scenario`).
use std::path::Path;
/// Scenario errors (stand-in).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioErrors(pub String);
/// Loads a scenario (stand-in).
pub fn load(path: &Path) -> Result<Plan, ScenarioErrors> {
    Err(ScenarioErrors(format!(
        "{}: scenario loading not built yet",
        path.display()
    )))
}
/// Parses a scenario (stand-in).
pub fn parse_str(
    _text: &str,
    path: &Path,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, ScenarioErrors> {
    load(path)
}
/// Allowlist check (stand-in).
pub fn check_target_allowed(_url: &url::Url, _allow: &[String]) -> Result<(), String> {
    Ok(())
}
