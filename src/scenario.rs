//! Scenario files: the raw TOML model, validation into a [`Plan`], and the messages a user
//! reads when a file is wrong. Owns every check of user input; nothing past [`Plan`] re-checks.

pub mod plan;
pub mod template;

pub use plan::Plan;
