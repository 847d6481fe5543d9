fn main() -> std::process::ExitCode {
    hastack_rt::run_with_subcommands::<checkd::Checkd>(vec![checkd::import_xinetd::subcommand()])
}
