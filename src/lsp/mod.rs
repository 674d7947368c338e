//! `nixl lsp`: the language server. Diagnostics come from the same
//! `pipeline::load_text` as `nixl check`; hover, completion and navigation read
//! the same analysis. See docs/editors.md for editor set-up.

pub mod analysis;
pub mod completion;
pub mod convert;
pub mod docs;
pub mod hints;
pub mod hover;
pub mod index;
pub mod locate;
pub mod navigate;
pub mod outline;
pub mod rename;
pub mod reparse;
pub mod server;
pub mod transport;

pub use server::{capabilities, serve};

/// Serves over stdin/stdout, as editors start it.
pub fn run_stdio() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (conn, io) = transport::stdio();
    let served = serve(conn);
    io.join()?;
    served
}
