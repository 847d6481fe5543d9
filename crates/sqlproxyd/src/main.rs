fn main() -> std::process::ExitCode {
    hastack_rt::run_with_subcommands::<sqlproxyd::Sqlproxyd>(vec![
        sqlproxyd::import_mycat::subcommand(),
    ])
}
