//! `lbd ctl`: runs one runtime API command on a running lbd through its
//! unix socket and prints the answer — HAProxy users' `echo "show stat" |
//! socat stdio /run/haproxy/admin.sock`, without socat.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use hastack_rt::{ExitCode, Subcommand};

use crate::config::Config;

pub fn subcommand() -> Subcommand {
    Subcommand {
        command: Command::new("ctl")
            .about("Run a runtime API command (show stat, show servers state, disable server B/S, set weight B/S N, ...; `help` lists them) on a running lbd through its runtime socket")
            .arg(
                Arg::new("socket")
                    .short('s')
                    .long("socket")
                    .value_name("PATH")
                    .help("The runtime socket; default: runtime_socket.path of --config"),
            )
            .arg(
                Arg::new("config")
                    .short('f')
                    .long("config")
                    .value_name("FILE")
                    .default_value("/etc/hastack/lbd.yaml")
                    .help("lbd's config, to find its runtime socket"),
            )
            .arg(
                Arg::new("command")
                    .value_name("COMMAND")
                    .required(true)
                    .num_args(1..)
                    .action(ArgAction::Append)
                    .help("The command and its arguments, e.g. show stat"),
            ),
        run,
    }
}

fn run(m: &ArgMatches) -> ExitCode {
    let socket = match m.get_one::<String>("socket") {
        Some(s) => PathBuf::from(s),
        None => {
            let file = m
                .get_one::<String>("config")
                .map_or("/etc/hastack/lbd.yaml", String::as_str);
            match hastack_rt::config::load::<Config>(std::path::Path::new(file)) {
                Ok(c) => match c.runtime_socket {
                    Some(s) => s.path,
                    None => {
                        eprintln!("lbd ctl: {file} has no runtime_socket; give one with --socket");
                        return ExitCode::Config;
                    }
                },
                Err(errors) => {
                    for e in &errors.0 {
                        eprintln!("{e}");
                    }
                    return ExitCode::Config;
                }
            }
        }
    };
    let words: Vec<&str> = m
        .get_many::<String>("command")
        .map(|v| v.map(String::as_str).collect())
        .unwrap_or_default();
    match ask(&socket, &words.join(" ")) {
        Ok(answer) => {
            print!("{answer}");
            ExitCode::Ok
        }
        Err(e) => {
            eprintln!("lbd ctl: {}: {e}", socket.display());
            ExitCode::Runtime
        }
    }
}

/// Sends `line` and reads the answer until lbd closes.
pub fn ask(socket: &std::path::Path, line: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(line.as_bytes())?;
    s.write_all(b"\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
