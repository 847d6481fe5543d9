//! Manual pages, from the same clap definition as `--help` plus the
//! sections every daemon shares (config, signals, admin endpoint, exit status).

use clap::Command;

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would
/// read as a request.
fn roff_text(line: &str) -> String {
    let escaped = line.replace('\\', "\\e");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

fn section(out: &mut String, title: &str, paragraphs: &[&str]) {
    out.push_str(&format!(".SH {title}\n"));
    for p in paragraphs {
        out.push_str(".PP\n");
        out.push_str(&roff_text(p));
        out.push('\n');
    }
}

/// The whole page for daemon `name` (section 8).
pub fn render(
    cmd: Command,
    name: &str,
    admin_port: u16,
    config_help: &str,
) -> std::io::Result<String> {
    let man = clap_mangen::Man::new(cmd)
        .section("8")
        .manual("hastack")
        .source(format!("hastack {}", env!("CARGO_PKG_VERSION")));
    let mut head = Vec::new();
    man.render_title(&mut head)?;
    man.render_name_section(&mut head)?;
    man.render_synopsis_section(&mut head)?;
    man.render_description_section(&mut head)?;
    man.render_options_section(&mut head)?;
    man.render_subcommands_section(&mut head)?;
    let mut out = String::from_utf8_lossy(&head).into_owned();
    let config_paragraphs: Vec<&str> = config_help
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let mut config = vec![
        "The config file is YAML. Unknown keys are errors. Durations are written 250ms, 2s or 1m. \
         Passwords may be given inline, as {file: PATH} or as {env: NAME}; they are never logged. \
         `--check` lists every error found, each as FILE:LINE:COLUMN: KEY.PATH: what was expected.",
    ];
    config.extend(config_paragraphs);
    config.push("Every daemon also reads admin_http.listen (where /status and /metrics are served) and shutdown_grace (how long SIGTERM waits for work in flight).");
    section(&mut out, "CONFIGURATION", &config);
    section(
        &mut out,
        "ADMIN ENDPOINT",
        &[&format!(
            "HTTP on admin_http.listen (default 127.0.0.1:{admin_port}): GET /status answers JSON (name, version, pid, uptime, config file and generation, last reload, the daemon's own state); GET /metrics answers OpenMetrics text, series named hastack_{name}_*."
        )],
    );
    section(
        &mut out,
        "SIGNALS",
        &[
            "SIGHUP reloads the config file. An invalid file is refused with one log line per error and the running config stays in force (its generation unchanged); a valid one is applied and the generation goes up by one.",
            "SIGTERM and SIGINT stop the daemon gracefully: it stops taking new work and waits up to shutdown_grace for work in flight, then exits 0.",
        ],
    );
    section(
        &mut out,
        "EXIT STATUS",
        &["0: stopped cleanly, or --check found the config valid. 1: runtime error (an address in use or not on this host, a peer it must reach). 2: config or usage error."],
    );
    section(
        &mut out,
        "FILES",
        &[&format!("/etc/hastack/{name}.yaml (the packaged systemd unit's config); a commented example is configs/{name}.yaml in the source tree.")],
    );
    section(
        &mut out,
        "SEE ALSO",
        &["vrrpd(8), lbd(8), sqlproxyd(8), checkd(8); the project's README.md and docs/."],
    );
    let mut tail = Vec::new();
    man.render_version_section(&mut tail)?;
    out.push_str(&String::from_utf8_lossy(&tail));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_requests_in_text_are_escaped() {
        assert_eq!(roff_text(".hidden"), "\\&.hidden");
        assert_eq!(roff_text("a\\b"), "a\\eb");
        assert_eq!(roff_text("plain"), "plain");
    }
}
