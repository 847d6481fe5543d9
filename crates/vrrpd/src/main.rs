fn main() -> std::process::ExitCode {
    hastack_rt::run_with_subcommands::<vrrpd::Vrrpd>(vec![vrrpd::import_keepalived::subcommand()])
}
