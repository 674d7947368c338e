//! `nixl plan --refresh`: asks the provider that made the recorded nodes whether they still run
//! as recorded (the read-only question apply asks before it sends them anything).

use super::apply::{local_root, provider_kind, ProviderKind};
use super::args::{self, Opened};
use super::output;
use nixl::plan::refresh::Refresh;
use nixl::progress::{Sink, Terminal};
use nixl::provider::aws::{AwsOptions, AwsProvider};
use nixl::provider::local::LocalProvider;
use nixl::state::State;
use std::process::ExitCode;
use std::sync::Arc;

/// The provider the state records (its nodes are that provider's), else the one nixl.toml names, else AWS.
fn provider_of(opened: &Opened, state: &State) -> ProviderKind {
    match state.provider.as_deref() {
        Some("local") => ProviderKind::Local,
        Some("aws") => ProviderKind::Aws,
        _ => provider_kind(None, &args::config(&opened.file)),
    }
}

/// What the provider finds of the state's nodes; no nodes recorded asks nothing.
pub fn ask(opened: &Opened, state: &State) -> Result<Refresh, ExitCode> {
    let kind = provider_of(opened, state);
    let nodes = nixl::apply::recorded_nodes(state);
    if nodes.is_empty() {
        return Ok(Refresh { provider: kind.name().into(), checked: 0, findings: vec![] });
    }
    let config = args::config(&opened.file);
    // Before the runtime starts threads: the SDK reads these from the environment.
    config.export_env();
    let rt = args::runtime()?;
    let campaign = opened.campaign();
    let sink: Arc<dyn Sink> = Arc::new(Terminal::stderr());
    let asked = rt.block_on(async {
        match kind {
            ProviderKind::Local => {
                let p = LocalProvider::new(&local_root(&opened.file, campaign.name()), &args::dir_of(&opened.file));
                nixl::apply::observe(&p, &nodes).await
            }
            ProviderKind::Aws => {
                let region = campaign.stack.as_ref().map(|s| s.region.clone()).unwrap_or_default();
                let p = AwsProvider::new(&region, AwsOptions::from_config(&config.aws), sink).await?;
                nixl::apply::observe(&p, &nodes).await
            }
        }
    });
    asked.map_err(|e| output::fail(&format!("cannot ask {} about the recorded nodes: {e}", kind.name())))
}
