//! Standalone.
/// Args.
#[derive(Debug, clap::Args)]
pub struct MockKvArgs {}
/// Run.
pub async fn run_standalone(
    _args: MockKvArgs,
    _cancel: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    Ok(())
}
