//! Stage 1: text to syntax tree, and the formatter that prints it back.

pub mod ast;
mod explain;
mod fast;
pub mod fmt;
pub mod parser;
pub mod scan;

pub use parser::parse;
