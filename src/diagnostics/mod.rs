//! The one diagnostic type, from the parser to the editor.
//!
//! Every stage returns its diagnostics instead of stopping at the first, and
//! every diagnostic points into a source file through a [`Span`]. Rendering
//! (miette on the terminal, JSON for tools, LSP for editors) converts from
//! this type; nothing else builds user-facing errors.

mod diagnostic;
pub mod render;

pub use diagnostic::*;
