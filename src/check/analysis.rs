//! Analysis methods whose arguments can be wrong before anything runs: `pareto(...)`
//! takes at most one latency, the figure its front puts against throughput per GPU.
//! A mistake here would otherwise surface only after a campaign's last result.

use super::model::Model;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp};
use crate::syntax::ast::{Arg, Expr, ExprKind, StrPart};

/// The latency a front uses when `pareto()` names none.
pub const DEFAULT_LATENCY: &str = "ttft_p99";

/// Latencies a front may use, as results store them; `ttft`, `tpot` and `e2e` stand for their means.
/// Each is also a symbol of the language (`check::value::SYMBOLS`), so `pareto(ttft_p99)` evaluates.
pub const LATENCIES: [&str; 12] = [
    "ttft_mean",
    "ttft_p50",
    "ttft_p90",
    "ttft_p99",
    "tpot_mean",
    "tpot_p50",
    "tpot_p90",
    "tpot_p99",
    "e2e_latency_mean",
    "e2e_latency_p50",
    "e2e_latency_p90",
    "e2e_latency_p99",
];

/// The stored metric a latency argument names, if it names one.
pub fn latency_key(name: &str) -> Option<&'static str> {
    let key = match name {
        "ttft" => "ttft_mean",
        "tpot" => "tpot_mean",
        "e2e" => "e2e_latency_mean",
        other => other,
    };
    LATENCIES.iter().copied().find(|l| *l == key)
}

/// The method's function name, when it is a call of a name.
pub fn method_name(method: &Expr) -> Option<&str> {
    match &method.kind {
        ExprKind::Call(f, _) => match &f.kind {
            ExprKind::Name(i) => Some(i.name.as_str()),
            _ => None,
        },
        _ => None,
    }
}

/// Checks the arguments of every `pareto(...)` method.
pub fn check(model: &Model, diags: &mut Vec<Diagnostic>) {
    let methods = model.experiments.iter().flat_map(|e| &e.layers).flat_map(|l| &l.analyses).map(|a| &a.method);
    for m in methods {
        if let (Some("pareto"), ExprKind::Call(_, args)) = (method_name(m), &m.kind) {
            pareto(args, diags);
        }
    }
}

const USAGE: &str =
    "write `pareto()` for ttft_p99, or `pareto(e2e_latency_p99)`: one of ttft, tpot, e2e_latency with _mean, _p50, _p90 or _p99";

fn pareto(args: &[Arg], diags: &mut Vec<Diagnostic>) {
    for a in args {
        if let Some(key) = &a.name {
            diags.push(
                Diagnostic::error(Code::UnknownAttribute, key.span, format!("`pareto` takes no named argument `{}`", key.name))
                    .help(USAGE),
            );
        }
    }
    let positional: Vec<&Expr> = args.iter().filter(|a| a.name.is_none()).map(|a| &a.value).collect();
    if let Some(extra) = positional.get(1) {
        diags.push(Diagnostic::error(Code::Type, extra.span, "`pareto` takes one latency").help(USAGE));
    }
    let Some(first) = positional.first() else { return };
    match word(first) {
        Some(name) if latency_key(&name).is_some() => {}
        Some(name) => diags.push(
            Diagnostic::error(
                Code::Domain,
                first.span,
                format!("`{name}` is not a latency a Pareto front can put against throughput per GPU"),
            )
            .help(did_you_mean(&name, LATENCIES).or_help(|| USAGE.to_string())),
        ),
        None => diags.push(Diagnostic::error(Code::Type, first.span, "`pareto` takes a latency's name").help(USAGE)),
    }
}

/// A bare name or a literal string.
fn word(e: &Expr) -> Option<String> {
    match &e.kind {
        ExprKind::Name(i) => Some(i.name.clone()),
        ExprKind::Str(parts) => parts
            .iter()
            .map(|p| match p {
                StrPart::Text(t) => Some(t.as_str()),
                StrPart::Interp(_) => None,
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diags_of(method: &str) -> Vec<Diagnostic> {
        let text = format!(
            "experiment e {{\n  factor prompt = [1K]\n  layer \"L1\" {{\n    mode = unified\n    id = \"e-{{prompt}}\"\n  }}\n  layer \"A\" {{\n    analysis \"front\" {{\n      inputs = [\"L1\"]\n      method = {method}\n    }}\n  }}\n}}\n"
        );
        let out = crate::check::check_text("t.nixl", &text, &crate::check::imports::FsLoader);
        out.diagnostics.into_iter().filter(|d| d.message.contains("pareto") || d.message.contains("latency")).collect()
    }

    #[test]
    fn every_latency_is_a_symbol_so_the_method_evaluates() {
        assert!(LATENCIES.iter().all(|l| crate::check::value::SYMBOLS.contains(l)));
    }

    #[test]
    fn a_latency_or_nothing_is_accepted() {
        for ok in ["pareto()", "pareto(ttft_p99)", "pareto(e2e)", "pareto(\"tpot_p90\")"] {
            assert!(diags_of(ok).is_empty(), "{ok}: {:?}", diags_of(ok));
        }
        assert_eq!(latency_key("e2e"), Some("e2e_latency_mean"));
    }

    #[test]
    fn a_figure_that_is_not_a_latency_a_second_one_or_a_named_argument_is_an_error() {
        let d = diags_of("pareto(throughput_tps)");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].code, Code::Domain);
        let d = diags_of("pareto(ttft_p95)");
        assert!(d[0].help.as_deref().unwrap_or_default().contains("did you mean `ttft_p9"), "{:?}", d[0].help);
        let d = diags_of("pareto(ttft_p99, e2e)");
        assert_eq!(d[0].code, Code::Type);
        let d = diags_of("pareto(latency = ttft_p99)");
        assert_eq!(d[0].code, Code::UnknownAttribute);
    }
}
