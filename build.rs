//! Links the `nixl` binary as a position-dependent executable on Linux.
//!
//! A PIE binary of this size (the AWS SDK) carries about 69,000 relative relocations that
//! the dynamic loader applies on every start, touching and copying the pages they land on:
//! about 0.8 ms of the 2.5 ms a `nixl --version` took (benches/cli.rs). A CLI that runs
//! for a few milliseconds pays that on every call; the address-space randomisation of
//! the main image that PIE buys matters little for a tool that reads the user's own files.
//! Only the final link changes (`-bins`), so no dependency is rebuilt.

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
