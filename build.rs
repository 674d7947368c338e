//! Build-time work for the `nixl` binary:
//!
//! - The standard library is parsed here, with the crate's own parser compiled into this
//!   script, and each module's tree is stored in `OUT_DIR` (bincode) for the binary to
//!   embed: `nixl plan` decodes 41 KB of trees instead of parsing them on every run, which
//!   was a third of the time of `nixl plan examples/phase2.nixl`. A standard library that
//!   does not parse fails the build with its diagnostics.
//! - On Linux the binary is linked position-dependent. A PIE binary of this size (the AWS
//!   SDK) carries about 69,000 relative relocations that the dynamic loader applies on
//!   every start: about 0.8 ms of the 2.5 ms a `nixl --version` took (benches/cli.rs).
//!   The address-space randomisation of the main image that PIE buys matters little for a
//!   tool that reads the user's own files. Only the final link changes (`-bins`).

// The parser's modules, compiled as this script's own: they depend on nothing else.
#[allow(dead_code)]
#[path = "src/syntax/ast.rs"]
mod ast;
#[allow(dead_code)]
#[path = "src/diagnostics/diagnostic.rs"]
mod diagnostics;
#[allow(dead_code)]
#[path = "src/syntax/explain.rs"]
mod explain;
#[allow(dead_code)]
#[path = "src/syntax/fast/mod.rs"]
mod fast;
#[allow(dead_code)]
#[path = "src/syntax/parser.rs"]
mod parser;
#[allow(dead_code)]
#[path = "src/syntax/scan.rs"]
mod scan;

/// The standard library's modules: the file under `stdlib/` and the name its tree gets.
const STDLIB: &[&str] = &["aws", "models", "vllm", "tools"];

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    for name in STDLIB {
        let path = format!("stdlib/{name}.nixl");
        println!("cargo:rerun-if-changed={path}");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"));
        let (tree, diags) = parser::parse(0, &text);
        if !diags.is_empty() {
            let shown: Vec<String> = diags.iter().map(|d| format!("{path}:{}: {}", d.primary.span.start, d.message)).collect();
            panic!("the standard library does not parse:\n{}", shown.join("\n"));
        }
        let bytes = bincode::serialize(&tree).expect("a syntax tree serializes");
        std::fs::write(out.join(format!("std_{name}.tree")), bytes).expect("OUT_DIR is writable");
    }
    let syntax_sources = [
        "grammar/nixl.pest",
        "src/syntax/ast.rs",
        "src/syntax/parser.rs",
        "src/syntax/fast/mod.rs",
        "src/syntax/fast/expr.rs",
        "src/syntax/scan.rs",
        "src/syntax/explain.rs",
        "src/diagnostics/diagnostic.rs",
    ];
    // The standard library's trees are rebuilt whenever the parser changes.
    for path in syntax_sources {
        println!("cargo:rerun-if-changed={path}");
    }

    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
