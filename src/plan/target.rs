//! `--target` and `--replace`: what a user can name (an action address, a
//! layer, a server launch) and the actions that naming selects, with what they depend on.

use super::{Action, ActionId, Change, Kind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Action(ActionId),
    Layer(String),
    /// `group:N` or `launch:N`: server launch N as numbered in the plan.
    Launch(u32),
}

/// A `--target` or `--replace` that names nothing in the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownTarget {
    pub given: String,
    pub hint: Option<String>,
}

impl std::fmt::Display for UnknownTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` names no action, layer or launch of this plan", self.given)?;
        match &self.hint {
            Some(h) => write!(f, "; {h}"),
            None => write!(f, "; `nixl plan --json` lists the action ids, layers and launches"),
        }
    }
}

impl std::error::Error for UnknownTarget {}

impl Target {
    /// Reads what the user wrote against the campaign's actions: a launch, a layer, or an action id.
    pub fn parse(given: &str, actions: &[Action]) -> Result<Target, UnknownTarget> {
        let launch = given.strip_prefix("group:").or_else(|| given.strip_prefix("launch:"));
        if let Some(n) = launch {
            let last = actions.iter().filter_map(|a| a.launch.get()).max().unwrap_or(0);
            return match n.parse::<u32>() {
                Ok(n) if (1..=last).contains(&n) => Ok(Target::Launch(n)),
                _ => Err(UnknownTarget {
                    given: given.into(),
                    hint: Some(if last == 0 {
                        "this campaign has no server launch".into()
                    } else {
                        format!("the launches are numbered 1 to {last}, as in the plan")
                    }),
                }),
            };
        }
        if actions.iter().any(|a| a.layer.as_deref() == Some(given)) {
            return Ok(Target::Layer(given.into()));
        }
        let id = ActionId::from(given);
        if actions.iter().any(|a| a.id == id) {
            return Ok(Target::Action(id));
        }
        let names: Vec<String> = actions
            .iter()
            .map(|a| a.id.to_string())
            .chain(actions.iter().filter_map(|a| a.layer.as_deref().map(str::to_string)))
            .collect();
        Err(UnknownTarget {
            given: given.into(),
            hint: crate::diagnostics::did_you_mean(given, names.iter().map(String::as_str)).map(|h| h.text),
        })
    }

    /// Every text of a list, or the first that names nothing.
    pub fn parse_all(given: &[String], actions: &[Action]) -> Result<Vec<Target>, UnknownTarget> {
        given.iter().map(|g| Target::parse(g, actions)).collect()
    }

    pub fn matches(&self, a: &Action) -> bool {
        match self {
            Target::Action(id) => &a.id == id,
            Target::Layer(l) => a.layer.as_deref() == Some(l),
            Target::Launch(n) => a.launch.get() == Some(*n),
        }
    }
}

/// Whether an action has work to do.
pub fn runs(a: &Action) -> bool {
    a.change != Change::NoOp && a.change != Change::Delete
}

/// The targets and what they need, marked: a pattern its launch's start and
/// stop, a launch the nodes set up, a setup step the steps before it. Not the
/// actions that merely run earlier (the previous launch): targeting launch 3 runs launch 3.
pub fn selection(actions: &[Action], targets: &[Target]) -> Vec<bool> {
    let mut stack: Vec<usize> = (0..actions.len()).filter(|&i| targets.iter().any(|t| t.matches(&actions[i]))).collect();
    let stops: std::collections::HashMap<u32, usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.kind == Kind::ServerStop)
        .filter_map(|(i, a)| a.launch.get().map(|l| (l, i)))
        .collect();
    let mut out = vec![false; actions.len()];
    while let Some(i) = stack.pop() {
        if !out[i] {
            out[i] = true;
            let only_order = |d: &usize| actions[i].kind == Kind::ServerStart && actions[*d].kind == Kind::ServerStop;
            stack.extend(actions[i].needs.iter().filter(|d| !only_order(d)).copied());
            if actions[i].kind == Kind::Pattern {
                stack.extend(actions[i].launch.get().and_then(|l| stops.get(&l)).copied());
            }
        }
    }
    out
}
