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

pub fn load_text(name: &str, text: &str, loader: &dyn check::imports::Loader) -> Loaded {
    finish(check::check_text(name, text, loader))
}

fn finish(mut check: CheckOutput) -> Loaded {
    let mut campaigns: Vec<Campaign> = vec![];
    // Experiments untouched by the errors found so far are resolved too, so their own mistakes show at once.
    let experiments = check::isolate::expandable(&check);
    if !experiments.is_empty() {
        for name in &experiments {
            let (c, diags) = design::campaign::resolve(&check.model, name);
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
