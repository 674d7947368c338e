//! The design's factors as results are read by them: every factor, and every
//! restart setting (mode, transport), with its levels in numeric order and
//! matched to the text a result stores for it.

use super::{setting_text, ResultRecord};
use crate::check::value::Value;
use crate::design::Design;
use std::cmp::Ordering;

/// A factor of the design (or a restart setting) and its levels, in the order results are shown.
#[derive(Clone, Debug, PartialEq)]
pub struct Factor {
    pub name: String,
    /// A restart setting (mode, transport) rather than a factor of the design: layers
    /// differ in it by construction, so comparisons across layers do not match on it.
    pub restart: bool,
    /// Numeric levels by value (c=1, c=4, c=16; 1K before 12K); others as declared.
    pub levels: Vec<Level>,
}

/// One level: the text a result stores, and its number when it has one (12K is 12288).
#[derive(Clone, Debug, PartialEq)]
pub struct Level {
    pub text: String,
    pub value: Option<f64>,
}

impl Level {
    fn of(v: &Value) -> Level {
        Level { text: setting_text(v), value: v.as_f64() }
    }
}

impl Factor {
    fn new(name: &str, values: &[Value], restart: bool) -> Factor {
        let mut levels: Vec<Level> = vec![];
        for v in values {
            let l = Level::of(v);
            if !levels.contains(&l) {
                levels.push(l);
            }
        }
        if levels.iter().all(|l| l.value.is_some()) {
            levels.sort_by(|a, b| a.value.unwrap_or(0.0).total_cmp(&b.value.unwrap_or(0.0)));
        }
        Factor { name: name.to_string(), restart, levels }
    }

    /// The level a result stores for this factor, if any.
    pub fn of<'r>(&self, r: &'r ResultRecord) -> Option<&'r str> {
        r.settings.get(&self.name).and_then(|v| v.as_str())
    }

    /// The declared level with this text.
    pub fn level(&self, text: &str) -> Option<&Level> {
        self.levels.iter().find(|l| l.text == text)
    }

    /// Whether every level is a number.
    pub fn numeric(&self) -> bool {
        !self.levels.is_empty() && self.levels.iter().all(|l| l.value.is_some())
    }

    /// Orders two stored texts as the levels are ordered; texts that are no level go after, by text.
    pub fn cmp(&self, a: &str, b: &str) -> Ordering {
        let pos = |t: &str| self.levels.iter().position(|l| l.text == t).unwrap_or(usize::MAX);
        pos(a).cmp(&pos(b)).then_with(|| a.cmp(b))
    }
}

/// The design's factors in declaration order, then the restart settings that are not
/// factors (mode, transport) with the levels its launches use. Records and single-value
/// restart settings (a YaRN record) are not levels one plots against, and are left out.
pub fn of_design(design: &Design) -> Vec<Factor> {
    let mut out: Vec<Factor> = design.factors.iter().map(|f| Factor::new(&f.name, &f.levels, false)).collect();
    let mut names: Vec<&str> = vec![];
    for g in &design.groups {
        for (k, _) in &g.values {
            if !names.contains(&k.as_str()) && !out.iter().any(|f| &f.name == k) {
                names.push(k);
            }
        }
    }
    for name in names {
        let values: Vec<Value> =
            design.groups.iter().filter_map(|g| g.values.iter().find(|(k, _)| k == name)).map(|(_, v)| v.clone()).collect();
        let scalar =
            values.iter().all(|v| matches!(v, Value::Num(..) | Value::Sym(_) | Value::Str(_) | Value::Bool(_) | Value::None));
        if scalar {
            out.push(Factor::new(name, &values, true));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::ast::Unit;

    #[test]
    fn numeric_levels_are_ordered_by_value_not_text() {
        let tokens = |n: f64| Value::Num(n, Unit::Tokens);
        let f = Factor::new("prompt", &[tokens(12288.0), tokens(1024.0), tokens(4096.0)], false);
        let texts: Vec<&str> = f.levels.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["1K", "4K", "12K"]);
        let c = Factor::new("concurrency", &[Value::num(16.0), Value::num(1.0), Value::num(4.0)], false);
        assert_eq!(c.levels.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["1", "4", "16"]);
        assert_eq!(c.cmp("4", "16"), Ordering::Less);
        assert_eq!(c.cmp("16", "other"), Ordering::Less);
        let m = Factor::new("mode", &[Value::Sym("unified".into()), Value::Sym("disaggregated".into())], true);
        assert_eq!(m.levels[0].text, "unified", "symbols keep their declared order");
    }
}
