//! `nixl destroy`: the nodes and the base resources apply created, or only
//! the nodes with `--target nodes`. Results and their records stay on disk.

use super::apply::{confirm, local_root, locked_state, provider_kind, Acting, ProviderKind};
use super::args::{self, CampaignArgs};
use super::output;
use nixl::address::ActionId;
use nixl::diagnostics::render::Format;
use nixl::progress::{Sink, Terminal};
use nixl::provider::aws::{AwsOptions, AwsProvider};
use nixl::provider::local::LocalProvider;
use nixl::provider::Provider;
use std::process::ExitCode;
use std::sync::Arc;

/// What `--target` can name for destroy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DestroyTarget {
    /// Everything: nodes, bucket contents, the stack.
    Stack,
    /// The nodes only: the stack, its bucket and role stay for the next apply.
    Nodes,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub campaign: CampaignArgs,
    #[command(flatten)]
    pub acting: Acting,
    /// Destroy only this: `nodes` (keep the stack) or `stack` (everything, the default).
    #[arg(long, value_enum, value_name = "WHAT")]
    pub target: Option<DestroyTarget>,
}

pub fn run(a: &Args) -> ExitCode {
    let opened = match args::open(&a.campaign.target, Format::Auto) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let (file, campaign) = (opened.file.clone(), opened.campaign());
    let Some(stack) = &campaign.stack else { return output::fail(&format!("experiment `{}` has no stack", campaign.name())) };
    let state_path = opened.state_path(a.campaign.state.as_deref());
    let config = args::config(&file);
    let kind = provider_kind(a.acting.provider, &config);
    let (_lock, mut state) = match locked_state(&state_path, "destroy", kind) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // What the state created is what goes: its own name and region, even when the file
    // has since been changed to declare another stack.
    let recorded = state.infra.stack.as_ref();
    let mut stack = stack.clone();
    if let Some(name) = recorded.and_then(|r| r.name.clone()) {
        stack.name = name;
    }
    if let Some(region) = recorded.and_then(|r| r.region.clone()) {
        stack.region = region;
    }
    let stack = &stack;
    let only_nodes = a.target == Some(DestroyTarget::Nodes);
    let nodes = nixl::apply::recorded_nodes(&state);
    let what = if only_nodes { "its nodes (the stack stays)" } else { "the base resources" };
    output::out(&format!(
        "nixl will destroy stack \"{}\": {} node(s) and {what}. Results stay on disk.\n",
        stack.name,
        nodes.len()
    ));
    if !confirm("Do you really want to destroy what this experiment created?", a.acting.auto_approve) {
        output::out("Destroy cancelled.\n");
        return ExitCode::from(1);
    }
    let info = nixl::apply::recorded_stack(&state);
    config.export_env();
    let rt = match args::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let sink: Arc<dyn Sink> = Arc::new(Terminal::stderr());
    let result = rt.block_on(async {
        match kind {
            ProviderKind::Local => {
                let p = LocalProvider::new(&local_root(&file, campaign.name()), &args::dir_of(&file));
                if only_nodes {
                    p.destroy_nodes(stack, &nodes).await
                } else {
                    p.destroy(stack, info.as_ref(), &nodes).await
                }
            }
            ProviderKind::Aws => {
                let p = AwsProvider::new(&stack.region, AwsOptions::from_config(&config.aws), sink.clone()).await?;
                if only_nodes {
                    return p.destroy_nodes(stack, &nodes).await;
                }
                // Each region the stack may have used, the recorded one first (`regions = [...]`).
                let mut left = vec![];
                for t in nixl::apply::teardown(&state, stack) {
                    p.use_region(&t.stack.region).await?;
                    match p.destroy(&t.stack, t.info.as_ref(), &t.nodes).await {
                        Err(nixl::provider::ProviderError::NotRemoved(l)) => left.extend(l),
                        other => other?,
                    }
                }
                match left.is_empty() {
                    true => Ok(()),
                    false => Err(nixl::provider::ProviderError::NotRemoved(left)),
                }
            }
        }
    });
    if let Err(e) = result {
        return output::fail(&e.to_string());
    }
    // What lived on the nodes is gone with them; results and their records stay.
    state.infra.nodes.clear();
    let gone = |id: &ActionId| matches!(id, ActionId::Nodes | ActionId::Setup(_)) || (!only_nodes && id.is_infrastructure());
    state.actions.retain(|id, _| !gone(id));
    if !only_nodes {
        state.infra.stack = None;
        state.infra.left_stacks.clear();
    }
    if let Err(e) = state.save(&state_path) {
        return output::fail(&e.to_string());
    }
    output::out("Destroy complete.\n");
    ExitCode::SUCCESS
}
