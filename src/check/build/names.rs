//! The names an expression or a template uses, for checks and dependency tracking.

use crate::check::value::SYMBOLS;
use crate::diagnostics::{did_you_mean, Code, Diagnostic, OrHelp};
use crate::syntax::ast;

/// Reports interpolated names in a template that are not in `allowed`.
pub fn check_template_names(e: &ast::Expr, allowed: &[String], diags: &mut Vec<Diagnostic>) {
    let mut names = vec![];
    collect_interp_names(e, &mut names);
    for id in names {
        if !allowed.contains(&id.name) && !SYMBOLS.contains(&id.name.as_str()) {
            let mut d = Diagnostic::error(Code::UnknownName, id.span, format!("unknown name `{}` in a template", id.name));
            d = d.help(
                did_you_mean(&id.name, allowed.iter().map(String::as_str))
                    .or_help(|| format!("templates may use {}; escape a literal brace as `\\{{`", allowed.join(", "))),
            );
            diags.push(d);
        }
    }
}

fn collect_interp_names(e: &ast::Expr, out: &mut Vec<ast::Ident>) {
    match &e.kind {
        ast::ExprKind::Str(parts) => {
            for p in parts {
                if let ast::StrPart::Interp(x) = p {
                    collect_free_names(x, out);
                }
            }
        }
        ast::ExprKind::List(items) => items.iter().for_each(|i| collect_interp_names(i, out)),
        _ => {}
    }
}

/// Names an expression reads (not field names after a dot).
pub fn collect_free_names(e: &ast::Expr, out: &mut Vec<ast::Ident>) {
    use ast::ExprKind::*;
    match &e.kind {
        Name(i) => out.push(i.clone()),
        Member(b, _) => collect_free_names(b, out),
        Call(_, args) => args.iter().for_each(|a| collect_free_names(&a.value, out)),
        With(b, fs) => {
            collect_free_names(b, out);
            fs.iter().for_each(|f| collect_free_names(&f.value, out));
        }
        Unary(_, x) | Paren(x) => collect_free_names(x, out),
        Binary(_, a, b) => {
            collect_free_names(a, out);
            collect_free_names(b, out);
        }
        Ternary(a, b, c) => {
            collect_free_names(a, out);
            collect_free_names(b, out);
            collect_free_names(c, out);
        }
        List(items) | Tuple(items) => items.iter().for_each(|i| collect_free_names(i, out)),
        Record(fs) => fs.iter().for_each(|f| collect_free_names(&f.value, out)),
        Str(parts) => parts.iter().for_each(|p| {
            if let ast::StrPart::Interp(x) = p {
                collect_free_names(x, out)
            }
        }),
        _ => {}
    }
}
