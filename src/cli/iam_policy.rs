//! `nixl iam-policy`: the IAM policy an operator needs to apply and destroy the campaign's stack.

use super::args::{self, FileArgs};
use super::output;
use nixl::diagnostics::render::Format;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: FileArgs,
}

pub fn run(a: &Args) -> ExitCode {
    let opened = match args::open(&a.target, Format::Auto) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match &opened.campaign().stack {
        Some(stack) => {
            output::out(&format!("{}\n", nixl::provider::aws::iam::operator_policy_json(stack)));
            ExitCode::SUCCESS
        }
        None => output::fail("the file declares no stack"),
    }
}
