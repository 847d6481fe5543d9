fn main() -> std::process::ExitCode {
    hastack_rt::run_with_subcommands::<lbd::Lbd>(vec![
        lbd::import_haproxy::subcommand(),
        lbd::ctl::subcommand(),
    ])
}
