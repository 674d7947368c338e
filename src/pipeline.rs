//! The stages chained for one file: check, then expand every experiment.
//! The CLI, the tests and the language server all start here.

use crate::check::{self, CheckOutput};
use crate::design::{self, Design};
use std::path::Path;

/// A checked file with its experiments expanded, and every diagnostic so far.
pub struct Loaded {
    pub check: CheckOutput,
    pub designs: Vec<Design>,
}

impl Loaded {
    /// An experiment by name, or the file's own (the last one declared; imports come first).
    pub fn design(&self, experiment: Option<&str>) -> Result<&Design, String> {
        match experiment {
            Some(name) => self.designs.iter().find(|d| d.experiment == name).ok_or_else(|| {
                let names: Vec<&str> = self.designs.iter().map(|d| d.experiment.as_str()).collect();
                format!(
                    "no experiment `{name}`; the file has {}",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )
            }),
            None => self.designs.last().ok_or_else(|| "the file declares no experiment".to_string()),
        }
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

pub fn load_text(name: &str, text: &str, loader: &dyn check::imports::Loader) -> Loaded {
    finish(check::check_text(name, text, loader))
}

fn finish(mut check: CheckOutput) -> Loaded {
    let mut designs = vec![];
    // Experiments untouched by the errors found so far are expanded too, so their own mistakes show at once.
    let experiments = check::isolate::expandable(&check);
    if !experiments.is_empty() {
        for name in &experiments {
            let (d, diags) = design::expand(&check.model, name);
            designs.extend(d);
            check.diagnostics.extend(diags);
        }
        check.diagnostics.extend(check::rules::check_ids(&check.model, &designs));
        check.diagnostics.sort_by_key(|d| (d.primary.span.file, d.primary.span.start));
        // An experiment expanded on its own and as another's parent reports the same things twice.
        let mut seen = std::collections::HashSet::new();
        check.diagnostics.retain(|d| seen.insert((d.code, d.primary.span, d.message.clone())));
    }
    Loaded { check, designs }
}
