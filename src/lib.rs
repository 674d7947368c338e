//! nixl: declarative benchmarking of disaggregated LLM inference.
//!
//! The pipeline, one module per stage: [`syntax`] (text to tree), [`check`]
//! (tree to resolved model), [`design`] (model to patterns), [`plan`]
//! (patterns and state to an action graph). Diagnostics from every stage
//! share one type, [`diagnostics::Diagnostic`].

pub mod address;
pub mod apply;
pub mod check;
pub mod config;
pub mod design;
pub mod diagnostics;
pub mod join;
pub mod lsp;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod provider;
pub mod results;
pub mod state;
pub mod syntax;
