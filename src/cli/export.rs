//! `nixl export-cfn`: the CloudFormation template of the campaign's stack, to review or deploy by hand.

use super::args::{self, FileArgs};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: FileArgs,
}

pub fn run(a: &Args) -> ExitCode {
    args::print_for_stack(&a.target, |_, stack| nixl::provider::aws::template::template_body(stack).to_string())
}
