//! The life of a daemon process: parse the command line, load the config,
//! start, serve the admin endpoint, reload on SIGHUP, stop on SIGTERM/SIGINT.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Command, FromArgMatches};
use prometheus_client::registry::Registry;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{watch, RwLock};

use crate::admin::{self, ActionError, ActionFuture, AdminSource, Page, PageRequest};
use crate::admin_auth::{AdminAuth, Refusal};
use crate::cli::RunArgs;
use crate::config::{self, DaemonConfig};
use crate::exit::ExitCode;
use crate::logging;
use crate::metrics::RuntimeMetrics;
use crate::notify::Notifier;

/// One of the four daemons, as the runtime drives it.
pub trait Daemon: Sized + Send + Sync + 'static {
    type Config: DaemonConfig;

    /// Binary name, also the metrics prefix (`hastack_<NAME>_...`).
    const NAME: &'static str;
    /// One line for `--help`.
    const ABOUT: &'static str;
    /// Admin HTTP port on 127.0.0.1 when the config names none.
    const DEFAULT_ADMIN_PORT: u16;
    /// The config file's sections, for the man page (plain text, one
    /// paragraph per line).
    const CONFIG_HELP: &'static str = "";
    /// The commented example config (configs/NAME.yaml), installed as
    /// /etc/hastack/NAME.yaml; its keys and comments make the NAME.yaml(5)
    /// page.
    const EXAMPLE_CONFIG: &'static str = "";

    /// Binds what the daemon serves and starts its work. An error here is a
    /// runtime error (exit 1): say which address or peer and why.
    fn start(
        config: Self::Config,
        ctx: &mut StartContext<'_>,
    ) -> impl Future<Output = anyhow::Result<Self>> + Send;

    /// Applies a new, already validated config. On error the daemon must
    /// still be running on the old one.
    fn reload(&mut self, config: Self::Config) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// The daemon's own state for `/status`.
    fn status(&self) -> serde_json::Value;

    /// `POST /actions/<name>?arg=value` on the admin endpoint: a runtime
    /// command (sqlproxyd's switchover, say). None by default.
    fn action(&self, name: &str, args: Vec<(String, String)>) -> ActionFuture {
        let _ = args;
        let msg = format!("{} has no action {name:?}", Self::NAME);
        Box::pin(async move { Err(ActionError::Unknown(msg)) })
    }

    /// A page of its own on the admin endpoint (lbd's stats page): any GET
    /// path other than `/status`, `/metrics` and `/actions/...`. None by
    /// default (404).
    fn page(&self, req: &PageRequest) -> Option<Page> {
        let _ = req;
        None
    }

    /// Stops taking new work and finishes what is in flight; the runtime
    /// stops waiting after the grace period.
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send;
}

/// What a daemon gets at start besides its config.
pub struct StartContext<'a> {
    /// Register the daemon's own metrics here (prefix already applied).
    pub registry: &'a mut Registry,
    pub config_path: &'a Path,
}

/// A tool subcommand of a daemon's binary (`sqlproxyd import-mycat ...`).
pub struct Subcommand {
    /// Its clap definition; the name is the word users type.
    pub command: Command,
    /// Runs it with its matches; what it returns is the process exit code.
    pub run: fn(&clap::ArgMatches) -> ExitCode,
}

/// Runs daemon `D` as a process: call this from `main`.
pub fn run<D: Daemon>() -> std::process::ExitCode {
    run_with::<D>(Vec::new()).into()
}

/// As [`run`], with tool subcommands beside the daemon itself.
pub fn run_with_subcommands<D: Daemon>(subcommands: Vec<Subcommand>) -> std::process::ExitCode {
    run_with::<D>(subcommands).into()
}

/// The daemon's whole command line, as `--help` and the man page show it.
fn command<D: Daemon>(subcommands: &[Subcommand]) -> Command {
    let mut cmd = RunArgs::augment_args(
        Command::new(D::NAME)
            .version(env_version())
            .about(D::ABOUT)
            .after_help("Exit status: 0 ok, 1 runtime error, 2 config or usage error.")
            .subcommand_negates_reqs(true)
            .args_conflicts_with_subcommands(true)
            .disable_help_subcommand(true),
    );
    for s in subcommands {
        cmd = cmd.subcommand(s.command.clone());
    }
    cmd.subcommand(
        Command::new("man")
            .about("Print this program's manual page (roff) on stdout: section 8, or 5 for the config file's")
            .arg(
                clap::Arg::new("section")
                    .value_parser(["8", "5"])
                    .default_value("8"),
            )
            .hide(true),
    )
}

fn run_with<D: Daemon>(subcommands: Vec<Subcommand>) -> ExitCode {
    let matches = match command::<D>(&subcommands).try_get_matches() {
        Ok(m) => m,
        Err(e) => return usage_error(e),
    };
    if let Some(("man", m)) = matches.subcommand() {
        if m.get_one::<String>("section").map(String::as_str) == Some("5") {
            print!(
                "{}",
                crate::man::render_config(D::NAME, D::CONFIG_HELP, D::EXAMPLE_CONFIG)
            );
            return ExitCode::Ok;
        }
        return match crate::man::render(
            command::<D>(&subcommands),
            D::NAME,
            D::DEFAULT_ADMIN_PORT,
            D::CONFIG_HELP,
        ) {
            Ok(page) => {
                print!("{page}");
                ExitCode::Ok
            }
            Err(e) => {
                eprintln!("{}: cannot render the man page: {e}", D::NAME);
                ExitCode::Runtime
            }
        };
    }
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(s) = subcommands.iter().find(|s| s.command.get_name() == name) {
            return (s.run)(sub);
        }
    }
    let args = match RunArgs::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    let config = match config::load::<D::Config>(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} error(s) in {}",
                D::NAME,
                errors.0.len(),
                args.config.display()
            );
            return ExitCode::Config;
        }
    };
    let warnings = config.warnings();
    if args.check {
        for w in &warnings {
            println!(
                "{}: warning: {}: {}",
                args.config.display(),
                w.path,
                w.message
            );
        }
        println!(
            "{}: configuration file {} is valid",
            D::NAME,
            args.config.display()
        );
        return ExitCode::Ok;
    }
    if let Err(e) = logging::init(args.log_format, &args.log_level) {
        eprintln!("{}: {e}", D::NAME);
        return ExitCode::Config;
    }
    for w in &warnings {
        tracing::warn!(key = %w.path, "{}", w.message);
    }
    let mut builder = match config.threads() {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: cannot start the async runtime: {e}", D::NAME);
            return ExitCode::Runtime;
        }
    };
    match runtime.block_on(serve::<D>(config, args.config)) {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("{}: {e:#}", D::NAME);
            ExitCode::Runtime
        }
    }
}

/// The crate version of the daemon binary; all crates share the workspace version.
/// Prints a clap error (or help/version) and picks the exit code.
fn usage_error(e: clap::Error) -> ExitCode {
    let code = if e.use_stderr() {
        ExitCode::Config
    } else {
        ExitCode::Ok
    };
    let _ = e.print();
    code
}

fn env_version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// What `/status` and `/metrics` read, shared with the admin task.
struct Shared<D: Daemon> {
    daemon: RwLock<D>,
    registry: Registry,
    metrics: RuntimeMetrics,
    started: Instant,
    started_unix: u64,
    config_path: PathBuf,
    generation: AtomicU64,
    last_reload: Mutex<serde_json::Value>,
    /// `admin_http.auth` in force: replaced by every successful reload, so
    /// a new token file takes effect on SIGHUP.
    auth: Mutex<Option<Arc<AdminAuth>>>,
}

impl<D: Daemon> AdminSource for Shared<D> {
    fn name(&self) -> &'static str {
        D::NAME
    }

    fn auth(&self) -> Option<Arc<AdminAuth>> {
        self.auth
            .lock()
            .map(|a| a.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    fn refused(&self, reason: Refusal) {
        self.metrics.refused(reason);
    }

    async fn status(&self) -> serde_json::Value {
        let state = self.daemon.read().await.status();
        let last_reload = self
            .last_reload
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        json!({
            "name": D::NAME,
            "version": env_version(),
            "pid": std::process::id(),
            "started_at_unix": self.started_unix,
            "uptime_seconds": uptime(self.started),
            "config_file": self.config_path,
            "config_generation": self.generation.load(Ordering::SeqCst),
            "last_reload": last_reload,
            "state": state,
        })
    }

    async fn action(
        &self,
        name: &str,
        args: Vec<(String, String)>,
    ) -> Result<serde_json::Value, ActionError> {
        // The future is built under the read lock and awaited without it.
        let run = self.daemon.read().await.action(name, args);
        run.await
    }

    async fn page(&self, req: PageRequest) -> Option<Page> {
        self.daemon.read().await.page(&req)
    }

    fn metrics(&self) -> String {
        self.metrics.uptime_seconds.set(uptime(self.started));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[allow(clippy::disallowed_methods)] // the shell owns the clock; uptime is a report, not a decision
fn uptime(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn serve<D: Daemon>(config: D::Config, config_path: PathBuf) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut registry = Registry::with_prefix(format!("hastack_{}", D::NAME));
    let metrics = RuntimeMetrics::register(&mut registry, env_version());
    let admin_addr = admin_listen::<D>(&config);
    let listener = TcpListener::bind(admin_addr)
        .await
        .map_err(|e| anyhow::anyhow!("admin_http.listen {admin_addr}: cannot bind: {e}"))?;
    // Signal handlers go in before start so a SIGHUP during start is not fatal.
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let grace = config.shutdown_grace().get();
    let auth = config.admin_http().auth.clone().map(Arc::new);

    let daemon = D::start(
        config,
        &mut StartContext {
            registry: &mut registry,
            config_path: &config_path,
        },
    )
    .await?;
    metrics.config_generation.set(1);
    let shared = Arc::new(Shared {
        daemon: RwLock::new(daemon),
        registry,
        metrics,
        started,
        started_unix: unix_now(),
        config_path: config_path.clone(),
        generation: AtomicU64::new(1),
        last_reload: Mutex::new(serde_json::Value::Null),
        auth: Mutex::new(auth),
    });
    let (stop_admin, admin_stopped) = watch::channel(false);
    let admin_task = tokio::spawn(admin::serve(listener, shared.clone(), admin_stopped));
    // Started and the admin endpoint bound: systemd may start what is After= us.
    let notifier = Notifier::from_env();
    notifier.ready();
    tracing::info!(
        version = env_version(),
        config = %config_path.display(),
        admin = %admin_addr,
        pid = std::process::id(),
        "{} started",
        D::NAME
    );

    let signal_name = loop {
        tokio::select! {
            _ = hup.recv() => {
                notifier.reloading();
                reload::<D>(&shared, admin_addr).await;
                // Refused or applied, the daemon serves again.
                notifier.ready();
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    notifier.stopping();
    tracing::info!(signal = signal_name, grace = ?grace, "stopping");
    // A task that never yields can starve the timer that ends the grace
    // period; a plain thread makes sure the process still goes.
    std::thread::spawn(move || {
        std::thread::sleep(grace + std::time::Duration::from_secs(5));
        eprintln!(
            "{}: still running 5s after the grace period; exiting",
            D::NAME
        );
        std::process::exit(ExitCode::Runtime as i32);
    });
    let _ = stop_admin.send(true);
    let mut daemon = shared.daemon.write().await;
    if tokio::time::timeout(grace, daemon.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?grace, "grace period over; stopping with work still in flight");
    }
    admin_task.abort();
    tracing::info!("{} stopped", D::NAME);
    Ok(())
}

fn admin_listen<D: Daemon>(config: &D::Config) -> SocketAddr {
    config.admin_http().listen.unwrap_or(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        D::DEFAULT_ADMIN_PORT,
    )))
}

/// SIGHUP: load the file again; apply it only if it is entirely valid.
async fn reload<D: Daemon>(shared: &Shared<D>, admin_addr: SocketAddr) {
    let path = &shared.config_path;
    let current = shared.generation.load(Ordering::SeqCst);
    let refuse = |errors: Vec<String>| {
        for e in &errors {
            tracing::error!(config = %path.display(), "{e}");
        }
        tracing::warn!(
            generation = current,
            errors = errors.len(),
            "reload refused; the running config stays in force"
        );
        shared.metrics.reload(false);
        set_last_reload(shared, "error", &errors);
    };
    let config = match config::load::<D::Config>(path) {
        Ok(c) => c,
        Err(errors) => return refuse(errors.0.iter().map(ToString::to_string).collect()),
    };
    let new_admin = admin_listen::<D>(&config);
    if new_admin != admin_addr {
        tracing::warn!(running = %admin_addr, configured = %new_admin, "admin_http.listen changes only at restart");
    }
    let auth = config.admin_http().auth.clone().map(Arc::new);
    let mut daemon = shared.daemon.write().await;
    if let Err(e) = daemon.reload(config).await {
        return refuse(vec![format!("{}: {e:#}", path.display())]);
    }
    match shared.auth.lock() {
        Ok(mut a) => *a = auth,
        Err(poisoned) => *poisoned.into_inner() = auth,
    }
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    shared.metrics.config_generation.set(generation as i64);
    shared.metrics.reload(true);
    set_last_reload(shared, "ok", &[]);
    tracing::info!(generation, config = %path.display(), "config reloaded");
}

fn set_last_reload<D: Daemon>(shared: &Shared<D>, result: &str, errors: &[String]) {
    if let Ok(mut last) = shared.last_reload.lock() {
        *last = json!({ "at_unix": unix_now(), "result": result, "errors": errors });
    }
}
