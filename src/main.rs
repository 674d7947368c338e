//! The `nixl` binary: everything is in `cli/`, one file per command.

mod cli;

// mimalloc: planning a large campaign makes millions of small allocations, which it
// serves faster and packs tighter than the system allocator (size classes of 16 and 48
// bytes where glibc takes 32 and 64). Measured in benches/cli.rs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc keeps freed memory for a second (v3's default purge delay) before giving it back.
// Planning a million patterns frees the expansion's tables just before it builds the plan;
// giving them back after 50 ms lowers its peak from about 380 to 353 MiB, while a command
// that ends within 50 ms (phase 2 plans in 5) never pays for a purge: with no delay at all
// it took 0.6 ms longer (benches/cli.rs). The option's number is its place in mimalloc.h's
// `mi_option_e` (v3, pinned by Cargo.lock).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

fn main() -> std::process::ExitCode {
    // SAFETY: sets one of mimalloc's options (milliseconds); it takes effect on the next purge.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 50) };
    cli::main()
}
