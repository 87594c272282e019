fn main() -> std::process::ExitCode {
    kvchaos::cli::main()
}
