fn main() -> std::process::ExitCode {
    hastack_rt::run::<lbd::Lbd>()
}
