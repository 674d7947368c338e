//! A stack's regions in fallback order: `region` with `zones`, or
//! `regions = [{ region = "us-east-1", zones = [...] }, { region = "us-west-2", zones = [...] }]`.
//! Each region must be in the catalogue, listed once, and hold the zones listed with it.

use super::{attrs, Ctx};
use crate::check::model::{Model, RegionChoice};
use crate::diagnostics::{did_you_mean, Code, Diagnostic, Span};
use crate::syntax::ast::{Block, Expr, ExprKind};

/// One region as written, with the spans its diagnostics point at.
struct Written {
    region: String,
    region_span: Span,
    zones: Vec<(String, Span)>,
    zones_span: Span,
    ami: Option<String>,
}

const EXAMPLE: &str =
    "regions = [{ region = \"us-east-1\", zones = [\"us-east-1a\"] }, { region = \"us-west-2\", zones = [\"us-west-2a\"] }]";

/// The stack's regions in the order apply tries them; every mistake is reported and left out.
pub(super) fn regions(cx: &mut Ctx, b: &Block, model: &Model) -> Vec<RegionChoice> {
    let written = match attrs(b).get("regions").copied() {
        Some(list) => {
            both_forms(cx, b, list.span);
            from_list(cx, list)
        }
        None => single(cx, b),
    };
    let mut kept: Vec<RegionChoice> = vec![];
    let mut first_at: Vec<Span> = vec![];
    for w in written {
        if let Some(k) = kept.iter().position(|r| r.region == w.region) {
            cx.diags.push(
                Diagnostic::error(Code::Duplicate, w.region_span, format!("region `{}` is listed twice", w.region))
                    .with(first_at[k], "first listed here")
                    .help("list each region once, with all its zones in the order to try them"),
            );
            continue;
        }
        check_zones(cx, &w, model);
        first_at.push(w.region_span);
        kept.push(RegionChoice { region: w.region, zones: w.zones.into_iter().map(|(z, _)| z).collect(), ami: w.ami });
    }
    kept
}

/// `regions` with `region` or `zones` beside it: two answers to one question.
fn both_forms(cx: &mut Ctx, b: &Block, list: Span) {
    for single in ["region", "zones"] {
        if let Some(e) = attrs(b).get(single) {
            cx.diags.push(
                Diagnostic::error(Code::Duplicate, e.span, format!("`{single}` is given beside `regions`"))
                    .with(list, "the regions are listed here")
                    .help("keep `regions` and move `region` and `zones` into its first entry"),
            );
        }
    }
}

/// `region` and `zones`: one region.
fn single(cx: &mut Ctx, b: &Block) -> Vec<Written> {
    let (Some(region), Some(zones)) = (attrs(b).get("region").copied(), attrs(b).get("zones").copied()) else {
        let broken = b.body.iter().any(|s| matches!(s.kind, crate::syntax::ast::StmtKind::Error(_)));
        if !broken {
            cx.diags.push(
                Diagnostic::error(Code::MissingAttribute, b.kind.span, "the stack names no region")
                    .help(format!("add `region = \"us-east-1\"` and `zones = [\"us-east-1a\"]`, or `{EXAMPLE}`")),
            );
        }
        return vec![];
    };
    // The schema has reported a value of the wrong type already.
    let Some(name) = text(cx, region, false) else { return vec![] };
    let zones_written = zone_list(cx, zones, false);
    vec![Written { region: name, region_span: region.span, zones: zones_written, zones_span: zones.span, ami: None }]
}

/// `regions = [{ region, zones, ami }, ...]`.
fn from_list(cx: &mut Ctx, list: &Expr) -> Vec<Written> {
    let ExprKind::List(items) = &list.kind else {
        cx.diags.push(
            Diagnostic::error(Code::Type, list.span, "`regions` must be a list of records, in fallback order")
                .help(format!("write `{EXAMPLE}`")),
        );
        return vec![];
    };
    if items.is_empty() {
        cx.diags.push(Diagnostic::error(Code::Zone, list.span, "`regions` is empty").help(format!("write `{EXAMPLE}`")));
    }
    items.iter().filter_map(|item| entry(cx, item)).collect()
}

/// One entry of `regions`.
fn entry(cx: &mut Ctx, item: &Expr) -> Option<Written> {
    let ExprKind::Record(fields) = &item.kind else {
        cx.diags.push(
            Diagnostic::error(Code::Type, item.span, "each entry of `regions` is a record")
                .help("write `{ region = \"us-west-2\", zones = [\"us-west-2a\", \"us-west-2b\"] }`"),
        );
        return None;
    };
    let (mut region, mut zones, mut ami) = (None, None, None);
    for f in fields {
        match f.name.name.as_str() {
            "region" => region = Some(&f.value),
            "zones" => zones = Some(&f.value),
            "ami" => ami = text(cx, &f.value, true),
            other => cx.diags.push(
                Diagnostic::error(Code::UnknownAttribute, f.name.span, format!("a region entry has no `{other}`"))
                    .help("an entry has `region`, `zones` and optionally `ami` (this region's AMI id)"),
            ),
        }
    }
    let (Some(region), Some(zones)) = (region, zones) else {
        cx.diags.push(
            Diagnostic::error(Code::MissingAttribute, item.span, "a region entry needs `region` and `zones`")
                .help("write `{ region = \"us-west-2\", zones = [\"us-west-2a\"] }`"),
        );
        return None;
    };
    let name = text(cx, region, true)?;
    Some(Written { region: name, region_span: region.span, zones: zone_list(cx, zones, true), zones_span: zones.span, ami })
}

/// A string value; with `report`, a value of another type is reported (entries of `regions`,
/// which the schema does not type).
fn text(cx: &mut Ctx, e: &Expr, report: bool) -> Option<String> {
    let found = cx.g.eval(e);
    match (found, report) {
        (Ok(v), _) if v.as_str().is_some() => v.as_str().map(str::to_string),
        (Ok(_), true) => {
            cx.diags.push(Diagnostic::error(Code::Type, e.span, "expected a string"));
            None
        }
        (Err(d), true) => {
            cx.diags.push(*d);
            None
        }
        (_, false) => None,
    }
}

/// The zones of a list literal with their spans (a single string is one zone).
fn zone_list(cx: &mut Ctx, e: &Expr, report: bool) -> Vec<(String, Span)> {
    match &e.kind {
        ExprKind::List(items) => items.iter().filter_map(|i| text(cx, i, report).map(|z| (z, i.span))).collect(),
        _ => text(cx, e, report).map(|z| vec![(z, e.span)]).unwrap_or_default(),
    }
}

/// The region is in the catalogue, and every zone is one of its own.
fn check_zones(cx: &mut Ctx, w: &Written, model: &Model) {
    if w.zones.is_empty() {
        cx.diags.push(
            Diagnostic::error(Code::Zone, w.zones_span, "`zones` is empty")
                .help(format!("list at least one availability zone, e.g. [\"{}a\"]", w.region)),
        );
    }
    let region = w.region.as_str();
    let known = model.regions.get(region);
    if known.is_none() && !model.regions.is_empty() {
        let mut d = Diagnostic::error(Code::Zone, w.region_span, format!("unknown region `{region}`"));
        if let Some(h) = did_you_mean(region, model.regions.keys().map(String::as_str)) {
            d = d.help(h);
        }
        cx.diags.push(d);
    }
    for (z, span) in &w.zones {
        let in_region = match known {
            Some(list) => list.contains(z),
            None => z.strip_prefix(region).is_some_and(|s| s.len() == 1 && s.chars().all(|c| c.is_ascii_lowercase())),
        };
        if !in_region {
            let mut d = Diagnostic::error(Code::Zone, *span, format!("zone `{z}` is not in region `{region}`"));
            d = d.help(match known.and_then(|l| did_you_mean(z, l.iter().map(String::as_str))) {
                Some(h) => h,
                None => format!("zones of {region} look like {region}a, {region}b, ...").into(),
            });
            cx.diags.push(d);
        }
    }
}
