//! Shell-script templating: the commands of each action, rendered from the
//! templates in the file and the standard library with every setting of the pattern in scope,
//! every value they interpolate quoted by [`shell_quote`] (`check::shell`, which setup steps
//! and services, rendered at check time, share).

use crate::check::model::{EnvValue, SetupStep, Tool};
pub use crate::check::shell::shell_quote;
use crate::check::shell::Renderer;
use crate::check::value::{Eval, Value};
use crate::check::Model;
use crate::diagnostics::Diagnostic;
use crate::syntax::ast::Expr;
use std::collections::BTreeMap;

/// Values every template may use besides the pattern's settings.
pub struct RenderVars {
    pub vars: BTreeMap<String, Value>,
    /// The nodes' private addresses in the stack's order (a missing one is 127.0.0.1).
    ips: Vec<String>,
}

impl RenderVars {
    /// `ips` are the nodes' private addresses in the stack's order; a missing one renders as 127.0.0.1.
    pub fn new(ips: &[&str], here: &str) -> RenderVars {
        let mut vars = BTreeMap::new();
        let ip = |i: usize| ips.get(i).map(|s| s.to_string()).unwrap_or_else(|| "127.0.0.1".into());
        vars.insert("prefill_ip".into(), Value::Str(ip(0)));
        vars.insert("decode_ip".into(), Value::Str(ip(1)));
        vars.insert("peer".into(), Value::Str(ip(0)));
        vars.insert("here".into(), Value::Str(here.to_string()));
        vars.insert("etcd".into(), Value::Str(format!("http://{}:2379", ip(0))));
        RenderVars { vars, ips: ips.iter().map(|s| s.to_string()).collect() }
    }

    /// Placeholder addresses 10.0.0.1..10.0.0.N for `nodes` nodes, before apply knows them.
    pub fn placeholders(nodes: usize, here: &str) -> RenderVars {
        let ips: Vec<String> = (1..=nodes.max(2)).map(|i| format!("10.0.0.{i}")).collect();
        RenderVars::new(&ips.iter().map(String::as_str).collect::<Vec<_>>(), here)
    }

    /// The private address of node `i` (127.0.0.1 when the list has none).
    pub fn ip(&self, i: usize) -> String {
        self.ips.get(i).cloned().unwrap_or_else(|| "127.0.0.1".into())
    }

    /// Adds `model_id`, the experiment's model as the server loads it (its Hugging Face id).
    pub fn with_model(mut self, model: Option<&crate::check::model::LlmModel>) -> RenderVars {
        if let Some(m) = model {
            self.vars.insert("model_id".into(), Value::Str(m.hf_id.clone()));
        }
        self
    }

    pub fn with(&self, extra: &[(&str, Value)]) -> BTreeMap<String, Value> {
        let mut v = self.vars.clone();
        for (k, x) in extra {
            v.insert(k.to_string(), x.clone());
        }
        v
    }
}

/// A template string (or list of lines) evaluated in a scope.
/// An error is the evaluator's own diagnostic, with the template's span.
/// Every value the template interpolates is quoted where it stands (`check::shell`).
pub fn template(e: &Expr, scope: &BTreeMap<String, Value>, kv_per_token: Option<f64>) -> Result<String, Box<Diagnostic>> {
    let ev = Eval { scope, kv_bytes_per_token: kv_per_token };
    Renderer { eval: &ev }.script(e)
}

/// The scope a server, bench or tool template sees: settings, then render variables.
pub fn scope(settings: &BTreeMap<String, Value>, model: &Model, render: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut s = settings.clone();
    if let Some(Value::Ref { name, .. }) = settings.get("model") {
        if let Some(m) = model.models.get(name) {
            s.insert("model_id".into(), Value::Str(m.hf_id.clone()));
        }
    }
    for (k, v) in render {
        s.insert(k.clone(), v.clone());
    }
    s
}

/// A setup step as one script: its environment (a secret only named: the provider hands its
/// value to the process), its skip condition, then its commands with `set -e` (the first failing
/// command fails the step, as the seed's runner did).
pub fn setup_script(step: &SetupStep) -> String {
    let mut s = String::from("#!/bin/bash\n");
    for (k, v) in &step.env {
        match v {
            EnvValue::Text(t) => s += &format!("export {k}={}\n", shell_quote(t)),
            // The value is in the environment the step runs with, never in its text.
            EnvValue::Secret(r) => s += &format!("# {k}: {r}, in the environment nixl runs this script with\n"),
        }
    }
    if let Some(cond) = &step.skip_if {
        s += &format!("if ( {cond} ) >/dev/null 2>&1; then echo 'NIXL_SKIPPED'; exit 0; fi\n");
    }
    s += "set -e\n";
    for line in &step.run {
        s += line;
        s.push('\n');
    }
    s
}

/// The command lines of a tool run, per role: `run`, or `server` and `client`.
pub fn tool_commands(
    tool: &Tool,
    params: &BTreeMap<String, Value>,
    render: &BTreeMap<String, Value>,
    kv: Option<f64>,
) -> Result<Vec<(String, String)>, Box<Diagnostic>> {
    let mut merged: BTreeMap<String, Value> = render.clone();
    for (k, v) in params {
        merged.insert(k.clone(), v.clone());
    }
    let mut out = vec![];
    for (role, e) in [("run", &tool.run), ("server", &tool.server), ("client", &tool.client)] {
        if let Some(e) = e {
            out.push((role.to_string(), template(e, &merged, kv)?));
        }
    }
    Ok(out)
}
