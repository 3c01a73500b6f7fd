//! The `libriassist` command: see `libriassist --help`.

fn main() -> std::process::ExitCode {
    libriassist::cli::main()
}
