fn main() -> std::process::ExitCode {
    hastack_rt::run::<checkd::Checkd>()
}
