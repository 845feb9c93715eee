//! The `trace-bench` binary: all logic lives in the library.

fn main() -> std::process::ExitCode {
    trace_bench::cli::main()
}
