//! The stages chained for one file: check, then resolve every experiment into
//! its campaign (merged, expanded, its stack and templates looked up, its
//! patterns ordered). `nixl check`, every other command, the golden tests and
//! the language server all start here, so they all see the same diagnostics.

use crate::check::{self, CheckOutput};
use crate::design::{self, Campaign, Design};
use std::path::Path;

/// A checked file with its experiments resolved, and every diagnostic so far.
pub struct Loaded {
    pub check: CheckOutput,
    pub campaigns: Vec<Campaign>,
}

/// `--experiment` named nothing the file declares, or the file declares no experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct NoExperiment {
    pub asked: Option<String>,
    pub declared: Vec<String>,
}

impl std::fmt::Display for NoExperiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = if self.declared.is_empty() { "none".to_string() } else { self.declared.join(", ") };
        match &self.asked {
            Some(name) => {
                write!(f, "no experiment `{name}`; the file declares {list}")?;
                if let Some(h) = crate::diagnostics::did_you_mean(name, self.declared.iter().map(String::as_str)) {
                    write!(f, " ({h})")?;
                }
                Ok(())
            }
            None => write!(f, "the file declares no experiment"),
        }
    }
}

impl std::error::Error for NoExperiment {}

impl Loaded {
    /// An experiment by name, or the file's own (the last one declared; imports come first).
    pub fn campaign(&self, experiment: Option<&str>) -> Result<&Campaign, NoExperiment> {
        let found = match experiment {
            Some(name) => self.campaigns.iter().find(|c| c.name() == name),
            None => self.campaigns.last(),
        };
        found.ok_or_else(|| NoExperiment {
            asked: experiment.map(str::to_string),
            declared: self.campaigns.iter().map(|c| c.name().to_string()).collect(),
        })
    }

    /// The design of an experiment chosen as [`Loaded::campaign`] chooses it.
    pub fn design(&self, experiment: Option<&str>) -> Result<&Design, NoExperiment> {
        self.campaign(experiment).map(|c| &c.design)
    }

    pub fn designs(&self) -> impl Iterator<Item = &Design> {
        self.campaigns.iter().map(|c| &c.design)
    }

    /// The campaign a campaign extends, for the reduction table.
    pub fn parent(&self, campaign: &Campaign) -> Option<&Campaign> {
        let parent = campaign.design.extends.as_deref()?;
        self.campaigns.iter().find(|c| c.name() == parent)
    }

    /// Hash of every source text, so a saved plan can tell the files changed.
    pub fn source_hash(&self) -> String {
        let texts: Vec<(&str, &str)> = self.check.sources.files().map(|(_, f)| (f.name.as_str(), &*f.text)).collect();
        crate::state::content_hash(&texts)
    }
}

pub fn load(path: &Path) -> Loaded {
    finish(check::check_path(path))
}

/// [`load`], with files read and parsed through `loader`.
pub fn load_with(path: &Path, loader: &dyn check::imports::Loader) -> Loaded {
    finish(check::check_path_with(path, loader))
}

/// [`load_with`] for a command about one experiment (None: the file's own, the last one
/// declared). Every experiment is resolved, but only that one's commands are rendered for
/// the check that vLLM and the shell accept them (`design::accepts`), the largest part of
/// resolving: planning phase 2 need not render phase 1's. `nixl check` renders them all.
pub fn load_for(path: &Path, loader: &dyn check::imports::Loader, experiment: Option<&str>) -> Loaded {
    finish_rendering(check::check_path_with(path, loader), Some(experiment))
}

pub fn load_text(name: &str, text: &str, loader: &dyn check::imports::Loader) -> Loaded {
    finish(check::check_text(name, text, loader))
}

fn finish(check: CheckOutput) -> Loaded {
    finish_rendering(check, None)
}

/// Resolves the experiments; `rendered` names the one whose commands are rendered (None:
/// all of them; Some(None): the last one resolved, the file's own).
fn finish_rendering(mut check: CheckOutput, rendered: Option<Option<&str>>) -> Loaded {
    let mut campaigns: Vec<Campaign> = vec![];
    // Experiments untouched by the errors found so far are resolved too, so their own mistakes show at once.
    let experiments = check::isolate::expandable(&check);
    if !experiments.is_empty() {
        let chosen = match rendered {
            None => None,
            Some(Some(name)) => Some(name),
            Some(None) => experiments.last().map(String::as_str),
        };
        for name in &experiments {
            let render = chosen.is_none_or(|c| c == name.as_str());
            let (c, diags) = design::campaign::resolve_with(&check.model, name, render);
            campaigns.extend(c);
            check.diagnostics.extend(diags);
        }
        let designs: Vec<&Design> = campaigns.iter().map(|c| &c.design).collect();
        check.diagnostics.extend(check::rules::check_ids(&check.model, &designs));
        check.diagnostics.sort_by_key(|d| (d.primary.span.file, d.primary.span.start));
        // An experiment resolved on its own and as another's parent reports the same things twice.
        let mut seen = std::collections::HashSet::new();
        check.diagnostics.retain(|d| seen.insert((d.code, d.primary.span, d.message.clone())));
    }
    Loaded { check, campaigns }
}
