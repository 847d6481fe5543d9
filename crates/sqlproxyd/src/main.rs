fn main() -> std::process::ExitCode {
    hastack_rt::run::<sqlproxyd::Sqlproxyd>()
}
