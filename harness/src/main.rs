fn main() {
    std::process::exit(scs_e2e::cli::main());
}
