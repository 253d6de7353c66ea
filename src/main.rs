fn main() -> std::process::ExitCode {
    adde::main()
}
