//! `nixl iam-policy`: the IAM policy an operator needs to apply and destroy the campaign's stack.

use super::args::{self, FileArgs};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: FileArgs,
}

pub fn run(a: &Args) -> ExitCode {
    args::print_for_stack(&a.target, |campaign, stack| {
        // The SSM parameters the setup reads secrets from, each once.
        let mut parameters: Vec<&str> = campaign
            .setup
            .iter()
            .flat_map(|s| &s.steps)
            .flat_map(|step| step.secrets())
            .filter_map(|(_, r)| match &r.source {
                nixl::check::model::SecretSource::Ssm(name) => Some(name.as_str()),
                nixl::check::model::SecretSource::Env(_) => None,
            })
            .collect();
        parameters.sort_unstable();
        parameters.dedup();
        nixl::provider::aws::iam::operator_policy_json(stack, &parameters)
    })
}
