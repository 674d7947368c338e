//! `nixl iam-policy`: the IAM policy an operator needs to apply and destroy the campaign's stack.

use super::args::{self, FileArgs};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: FileArgs,
}

pub fn run(a: &Args) -> ExitCode {
    args::print_for_stack(&a.target, |stack| nixl::provider::aws::iam::operator_policy_json(stack).to_string())
}
