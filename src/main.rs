//! The `b2b-invoice-sync` command line; all behaviour lives in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
