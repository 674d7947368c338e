//! A pattern's full settings and content hash, for `nixl show`, the planner
//! and the executor.

use super::context::{base_scope, defaults, derived_of, fixed_of};
use super::scope::PointScope;
use super::{Campaign, Pattern};
use crate::check::model::Experiment;
use crate::check::value::Value;
use crate::check::Model;
use crate::syntax::ast::Expr;
use std::collections::BTreeMap;

/// Resolves every setting of a design's patterns: what `nixl show` prints and
/// what the planner hashes, computed from the campaign's merged experiment.
pub struct Resolver<'c> {
    exp: &'c Experiment,
    base: BTreeMap<String, Value>,
    /// Hash of the settings every pattern shares, computed once.
    common_hash: String,
    names: Vec<String>,
    /// Each layer's fixed settings.
    fixed: Vec<Vec<(String, Expr)>>,
    /// Each layer's derived settings (looked up once, not once per pattern).
    derived: Vec<Vec<&'c crate::check::model::Derived>>,
    kv: Option<f64>,
    /// The patterns an analysis's hash covers.
    design: &'c super::Design,
    /// Every scheduled run's layer, id and hash, computed once for the first analysis:
    /// each analysis's hash covers those of its input layers.
    run_hashes: std::sync::OnceLock<Vec<(u32, &'c str, String)>>,
}

impl<'c> Resolver<'c> {
    pub fn new(model: &Model, campaign: &'c Campaign) -> Resolver<'c> {
        let exp = &campaign.experiment;
        // Hashed as an Option, as it always was, so recorded hashes stay valid.
        let common_hash = crate::state::content_hash(&Some(&exp.settings));
        Resolver {
            exp,
            base: base_scope(model, exp),
            common_hash,
            names: exp.factors.iter().map(|f| f.name.clone()).collect(),
            fixed: exp.layers.iter().map(fixed_of).collect(),
            derived: exp.layers.iter().map(|l| derived_of(exp, l)).collect(),
            kv: super::experiment_model(model, exp).map(|m| m.kv_bytes_per_token() as f64),
            design: &campaign.design,
            run_hashes: std::sync::OnceLock::new(),
        }
    }

    /// Every setting of a pattern: the experiment's shared settings and its own.
    pub fn settings(&self, p: &Pattern) -> BTreeMap<String, Value> {
        let mut out = self.exp.settings.clone();
        out.extend(self.own_settings(p));
        out
    }

    /// Content hash of everything that decides what a pattern runs. An analysis's
    /// also covers the patterns it reads (their ids and hashes), so a changed or pruned
    /// input makes it run again.
    pub fn hash(&self, p: &Pattern) -> String {
        crate::plan::ContentHash::Hex(self.digest(p)).to_string()
    }

    /// The 16 bytes [`Resolver::hash`] writes as hex: what the planner keeps for each pattern.
    pub fn digest(&self, p: &Pattern) -> [u8; 16] {
        let own = (&self.common_hash, &p.id, self.own_settings(p), &p.tool(), p.inputs());
        if p.category != super::Category::Analysis {
            return crate::state::content_digest(&own);
        }
        let own = crate::state::content_hash(&own);
        let runs = self.run_hashes.get_or_init(|| {
            let runs = self.design.scheduled().filter(|q| q.category != super::Category::Analysis);
            runs.map(|q| (q.layer, &*q.id, self.hash(q))).collect()
        });
        let inputs: Vec<(&str, &str)> = runs
            .iter()
            .filter(|(layer, ..)| self.design.layers.get(*layer as usize).is_some_and(|l| p.inputs().contains(&l.name)))
            .map(|(_, id, hash)| (*id, hash.as_str()))
            .collect();
        crate::state::content_digest(&(own, inputs))
    }

    /// The settings a pattern has beyond the experiment's shared ones.
    pub fn own_settings(&self, p: &Pattern) -> BTreeMap<String, Value> {
        // Every pattern has a mode, a transport and a KV layout, set or not.
        let mut out = defaults();
        let exp = self.exp;
        let Some(layer) = exp.layers.get(p.layer as usize) else { return out };
        out.insert("layer".into(), Value::Str(layer.name.clone()));
        if p.category != super::Category::E2e {
            out.extend(p.values().iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(t) = p.tool() {
                out.insert("tool".into(), Value::Str(t.to_string()));
            }
            return out;
        }
        let values: Vec<Value> = p
            .levels
            .iter()
            .enumerate()
            .map(|(i, l)| exp.factors[i].levels.get(*l as usize).cloned().unwrap_or(Value::None))
            .collect();
        let derived = &self.derived[p.layer as usize];
        let mut overrides = p.values().clone();
        overrides.insert("layer".into(), Value::Str(layer.name.clone()));
        let scope =
            PointScope::new(&overrides, &self.names, &values, &self.fixed[p.layer as usize], derived, &self.base, self.kv);
        out.extend(scope.all_settings());
        out
    }
}

/// Every setting of one pattern, resolved: what `nixl show` prints.
pub fn pattern_settings(model: &Model, campaign: &Campaign, p: &Pattern) -> BTreeMap<String, Value> {
    Resolver::new(model, campaign).settings(p)
}
