//! The `nixl` binary: everything is in `cli/`, one file per command.

mod cli;

// mimalloc: planning a large campaign makes millions of small allocations, which it
// serves faster and packs tighter than the system allocator (size classes of 16 and 48
// bytes where glibc takes 32 and 64). Measured in benches/cli.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
