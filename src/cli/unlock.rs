//! `nixl force-unlock`: remove a lock left by an apply or destroy that died.

use super::args::{self, CampaignArgs};
use super::output;
use nixl::diagnostics::render::Format;
use nixl::state::lock::Lock;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub campaign: CampaignArgs,
}

pub fn run(a: &Args) -> ExitCode {
    let opened = match args::open(&a.campaign.target, Format::Auto) {
        Ok(o) => o,
        Err(code) => return code,
    };
    let state_path = opened.state_path(a.campaign.state.as_deref());
    match Lock::force_unlock(&state_path) {
        Ok(Some(h)) => output::out(&format!("Removed the lock held by {h}.\n")),
        Ok(None) => output::out("Removed an unreadable lock.\n"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            output::out(&format!("The state `{}` is not locked.\n", state_path.display()))
        }
        Err(e) => return output::fail(&format!("cannot remove the lock: {e}")),
    }
    ExitCode::SUCCESS
}
