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

fn cmd_subcommands(cmd: &Command) -> Vec<&Command> {
    cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect()
}

/// The whole page for daemon `name` (section 8).
pub fn render(
    cmd: Command,
    name: &str,
    admin_port: u16,
    config_help: &str,
) -> std::io::Result<String> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("8")
        .manual("hastack")
        .source(format!("hastack {}", env!("CARGO_PKG_VERSION")));
    let mut head = Vec::new();
    man.render_title(&mut head)?;
    man.render_name_section(&mut head)?;
    man.render_synopsis_section(&mut head)?;
    man.render_description_section(&mut head)?;
    man.render_options_section(&mut head)?;
    let mut out = String::from_utf8_lossy(&head).into_owned();
    // The tool subcommands, each with its usage; clap_mangen would point at
    // NAME-SUB(8) pages that do not exist.
    let subs: Vec<&Command> = cmd_subcommands(&cmd);
    if !subs.is_empty() {
        out.push_str(".SH COMMANDS\n");
        for sub in subs {
            let usage = sub
                .clone()
                .bin_name(format!("{name} {}", sub.get_name()))
                .render_usage()
                .to_string();
            let usage = usage.trim_start_matches("Usage: ").trim();
            out.push_str(&format!(
                ".TP\n\\fB{}\\fR\n",
                roff_inline(usage).replace('-', "\\-")
            ));
            let about = sub
                .get_long_about()
                .or(sub.get_about())
                .map(|a| a.to_string())
                .unwrap_or_default();
            out.push_str(&roff_text(&about));
            out.push('\n');
        }
    }
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
    config.push("Every daemon also reads admin_http.listen (where /status, /metrics and POST /actions/* are served), admin_http.auth (token_file: a file holding the bearer token; users: basic-auth name and password; protect_reads) and shutdown_grace (how long SIGTERM waits for work in flight).");
    section(&mut out, "CONFIGURATION", &config);
    section(
        &mut out,
        "ADMIN ENDPOINT",
        &[&format!(
            "HTTP on admin_http.listen (default 127.0.0.1:{admin_port}): GET /status answers JSON (name, version, pid, uptime, config file and generation, last reload, the daemon's own state); GET /metrics answers OpenMetrics text, series named hastack_{name}_*."
        ), "POST /actions/NAME runs a runtime command and needs the credential of admin_http.auth: Authorization: Bearer with the token in token_file, or basic auth of one of users; missing or wrong, the answer is 401 with WWW-Authenticate; with no admin_http.auth no action runs (403). A request to /actions/ with an Origin header (a browser's) is refused (403). Reads stay open unless protect_reads is true. A listen address off loopback without admin_http.auth is a config error. Refusals are logged with the peer address and counted in hastack_NAME_admin_refused_total{reason}. To rotate the token, write the new token file and send SIGHUP: the reload reads it again, and a token file that cannot be read refuses the reload."],
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
        &[
            &format!("/etc/hastack/{name}.yaml: the config the packaged systemd unit ({name}.service) runs with; its format is {name}.yaml(5). The package installs the commented example (configs/{name}.yaml in the source tree) there."),
            &format!("/lib/systemd/system/{name}.service: the unit; Type=notify (READY=1 once the daemon listens), reload sends SIGHUP, runs as user hastack-{name}."),
        ],
    );
    section(
        &mut out,
        "SEE ALSO",
        &[&format!("{name}.yaml(5), vrrpd(8), lbd(8), sqlproxyd(8), checkd(8), systemd.service(5); the project's README.md and docs/{name}.md.")],
    );
    let mut tail = Vec::new();
    man.render_version_section(&mut tail)?;
    out.push_str(&String::from_utf8_lossy(&tail));
    Ok(out)
}

/// One key of the example config, as the section-5 page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleKey {
    /// Dotted path; list items are written `[]` (`users[].name`).
    pub path: String,
    /// The example's value; empty for a section.
    pub value: String,
    /// The comments that go with it, joined.
    pub text: String,
    /// Commented out in the example: optional, not set there.
    pub commented_out: bool,
}

/// A line's key, if it is `KEY: ...` or `- KEY: ...`: (column of the key,
/// whether it opens a list item, the key, the rest after the colon).
fn key_line(line: &str) -> Option<(usize, bool, &str, &str)> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = &line[indent..];
    let mut col = indent;
    let mut item = false;
    if let Some(r) = rest.strip_prefix("- ") {
        item = true;
        let extra = r.len() - r.trim_start().len();
        col += 2 + extra;
        rest = r.trim_start();
    }
    let colon = rest.find(':')?;
    let key = &rest[..colon];
    let after = &rest[colon + 1..];
    let is_key = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && (after.is_empty() || after.starts_with(' '));
    is_key.then_some((col, item, key, after))
}

/// Splits `value  # comment` outside quotes.
fn split_comment(s: &str) -> (&str, &str) {
    let mut quote = None;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if q == b => quote = None,
            (None, b'#') if i == 0 || bytes[i - 1] == b' ' => {
                return (s[..i].trim(), s[i + 1..].trim());
            }
            _ => {}
        }
    }
    (s.trim(), "")
}

/// The keys of a commented example config, in order, each once (a path seen
/// again adds its comment to the first). Keys in comments (`# key: value`)
/// count as optional keys; an indented `#   key:` right after prose is an
/// illustration of that prose, not a key.
pub fn example_keys(yaml: &str) -> Vec<ExampleKey> {
    let mut keys: Vec<ExampleKey> = Vec::new();
    // (column, path) of the open keys; a list item's key path ends in "[]".
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    // The last key's column, while comment lines may continue its text.
    let mut last: Option<(usize, usize)> = None;
    let mut after_prose = false;
    let lines: Vec<&str> = yaml.lines().collect();
    // The file's header comment (up to the first blank line) is about the
    // whole file, not a key.
    let header = lines
        .iter()
        .take_while(|l| l.trim_start().starts_with('#'))
        .count();
    for (n, raw) in lines.iter().enumerate().skip(header) {
        let trimmed = raw.trim_start();
        if trimmed.is_empty() {
            pending.clear();
            last = None;
            after_prose = false;
            continue;
        }
        let hash_col = raw.len() - trimmed.len();
        let (line, commented) = match trimmed.strip_prefix('#') {
            Some(body) => {
                let spaces = body.len() - body.trim_start().len();
                let candidate = format!(
                    "{}{}",
                    " ".repeat(hash_col + spaces.saturating_sub(1)),
                    body.trim_start()
                );
                let illustration = after_prose && spaces > 1;
                match key_line(&candidate) {
                    Some(_) if !illustration => (candidate, true),
                    _ => {
                        let text = body.trim().to_owned();
                        match last {
                            Some((col, idx)) if hash_col > col => {
                                let k = &mut keys[idx];
                                if !k.text.is_empty() {
                                    k.text.push(' ');
                                }
                                k.text.push_str(&text);
                            }
                            _ => {
                                last = None;
                                pending.push(text);
                                after_prose = true;
                            }
                        }
                        continue;
                    }
                }
            }
            None => (raw.to_string(), false),
        };
        let Some((col, item, key, after)) = key_line(&line) else {
            // A list item or a continued value: part of the key above.
            continue;
        };
        after_prose = false;
        while stack.last().is_some_and(|(c, _)| *c >= col) {
            stack.pop();
        }
        let parent = stack.last().map(|(_, p)| p.clone());
        let parent = match (parent, item) {
            (Some(p), true) => format!("{p}[]"),
            (Some(p), false) => {
                // A key of a list item opened by an earlier `- key:` line.
                if stack.last().is_some_and(|(c, _)| *c + 2 < col)
                    && keys.iter().any(|k| k.path.starts_with(&format!("{p}[].")))
                {
                    format!("{p}[]")
                } else {
                    p
                }
            }
            (None, _) => String::new(),
        };
        let path = if parent.is_empty() {
            key.to_owned()
        } else {
            format!("{parent}.{key}")
        };
        let (value, comment) = split_comment(after);
        let mut value = value.to_owned();
        if value.is_empty() {
            // A list of scalars below: show it as the value.
            let items: Vec<String> = lines[n + 1..]
                .iter()
                .map(|l| split_comment(l.trim()).0.to_owned())
                .take_while(|l| {
                    l.starts_with("- ") && !l.starts_with("- {") && key_line(l).is_none()
                })
                .map(|l| l[2..].trim().to_owned())
                .collect();
            if !items.is_empty() {
                value = format!("[{}]", items.join(", "));
            }
        }
        let mut text = pending.join(" ");
        pending.clear();
        if !comment.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(comment);
        }
        let idx = match keys.iter().position(|k| k.path == path) {
            Some(i) => {
                let k = &mut keys[i];
                if !text.is_empty() && !k.text.contains(&text) {
                    if !k.text.is_empty() {
                        k.text.push(' ');
                    }
                    k.text.push_str(&text);
                }
                k.commented_out &= commented;
                i
            }
            None => {
                keys.push(ExampleKey {
                    path: path.clone(),
                    value: value.clone(),
                    text,
                    commented_out: commented,
                });
                keys.len() - 1
            }
        };
        // A flow map's keys are keys too: `pool: {min: 4, max: 64}`, and
        // those of a list of flow maps (`- {name: a, ...}`) below.
        if value.starts_with('{') {
            add_flow_keys(&mut keys, &path, &value, commented);
        }
        if value.is_empty() {
            let items = lines[n + 1..]
                .iter()
                .map(|l| l.trim())
                .take_while(|l| l.starts_with("- {"));
            for l in items {
                add_flow_keys(&mut keys, &format!("{path}[]"), &l[2..], commented);
            }
        }
        stack.push((col, path));
        // Only a trailing comment continues on the lines below (indented
        // past the key); a comment block below a section is its first key's.
        last = (!comment.is_empty()).then_some((col, idx));
    }
    keys
}

/// Adds `parent.KEY` for each key of the flow map `flow`, unless listed.
fn add_flow_keys(keys: &mut Vec<ExampleKey>, parent: &str, flow: &str, commented_out: bool) {
    let Ok(serde_yaml::Value::Mapping(m)) = serde_yaml::from_str(flow) else {
        return;
    };
    for (k, v) in m {
        if let (Some(k), Ok(v)) = (k.as_str(), serde_yaml::to_string(&v)) {
            let path = format!("{parent}.{k}");
            if !keys.iter().any(|e| e.path == path) {
                keys.push(ExampleKey {
                    path,
                    value: v.trim().to_owned(),
                    text: String::new(),
                    commented_out,
                });
            }
        }
    }
}

/// The section-5 page for daemon `name`'s config file, from its commented
/// example config: every key with its example value and comment, then the
/// whole example.
pub fn render_config(name: &str, config_help: &str, example: &str) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let mut out = format!(
        ".TH {name}.yaml 5 \"hastack {version}\" hastack\n.SH NAME\n{name}.yaml \\- configuration file of {name}(8)\n"
    );
    out.push_str(&format!(
        ".SH SYNOPSIS\n/etc/hastack/{name}.yaml\n.PP\n\\fB{name} \\-f\\fR \\fIFILE\\fR [\\fB\\-\\-check\\fR]\n"
    ));
    let mut desc = vec![
        format!("The configuration of {name}(8), YAML. Unknown keys are errors; {name} --check lists every error found, each as FILE:LINE:COLUMN: KEY.PATH: what was expected. SIGHUP reloads the file; an invalid file is refused and the running config stays in force."),
        "Durations are written 250ms, 2s or 1m. Passwords may be given inline, as {file: PATH} or as {env: NAME}; they are never logged.".to_owned(),
    ];
    desc.extend(
        config_help
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned),
    );
    let refs: Vec<&str> = desc.iter().map(String::as_str).collect();
    section(&mut out, "DESCRIPTION", &refs);
    out.push_str(".SH KEYS\n.PP\n");
    out.push_str(&roff_text(&format!(
        "Every key of the example below, in its order, as a dotted path (a list's items are written []; a name such as an instance's is the example's). After the key: its value in the example. A key marked optional is commented out in the example and unset unless given. Where the default is not the example value, the key's text says so; admin_http.listen and shutdown_grace defaults are also in {name}(8)."
    )));
    out.push('\n');
    for k in example_keys(example) {
        out.push_str(".TP\n");
        let mut head = format!("\\fB{}\\fR", roff_inline(&k.path));
        if !k.value.is_empty() {
            head.push_str(&format!(": {}", roff_inline(&k.value)));
        }
        if k.commented_out {
            head.push_str(" (optional)");
        }
        out.push_str(&head);
        out.push('\n');
        let text = if k.text.is_empty() {
            if k.value.is_empty() {
                "A section; its keys follow.".to_owned()
            } else {
                "No comment in the example; see DESCRIPTION.".to_owned()
            }
        } else {
            k.text.clone()
        };
        out.push_str(&roff_text(&text));
        out.push('\n');
    }
    out.push_str(".SH EXAMPLE\n");
    out.push_str(&roff_text(&format!(
        "The commented example installed as /etc/hastack/{name}.yaml:"
    )));
    out.push_str("\n.PP\n.nf\n.ft CR\n");
    for line in example.lines() {
        out.push_str(&roff_text(line));
        out.push('\n');
    }
    out.push_str(".ft\n.fi\n");
    section(
        &mut out,
        "FILES",
        &[&format!(
            "/etc/hastack/{name}.yaml: the packaged systemd unit's config (a conffile, kept on upgrade and on remove, deleted on purge)."
        )],
    );
    section(
        &mut out,
        "SEE ALSO",
        &[&format!(
            "{name}(8), vrrpd.yaml(5), lbd.yaml(5), sqlproxyd.yaml(5), checkd.yaml(5); docs/{name}.md in the source tree."
        )],
    );
    out
}

/// Escapes what roff would read inside a line: backslashes only (a leading
/// `.` or `'` is [`roff_text`]'s business).
fn roff_inline(s: &str) -> String {
    s.replace('\\', "\\e")
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

    #[test]
    fn example_keys_follow_nesting_lists_comments_and_commented_out_keys() {
        let yaml = "# header: not a key\n\n# The endpoint.\nadmin_http:\n  listen: 1.2.3.4:5   # where\n                       # and more\nplain: 1\n# optional thing\n# opt:\n#   inner: x\nusers:\n  - name: a\n    password: p # secret\n  - name: b\n    hash: \"*AB#C\"\nlist:\n  - 1\n  - 2\npool: {min: 4, max: 64}\nnodes:\n  - {name: n1, role: write}\n  # Some prose:\n  #   illustration: 1\n  real: 2\n";
        let keys = example_keys(yaml);
        let paths: Vec<&str> = keys.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "admin_http",
                "admin_http.listen",
                "plain",
                "opt",
                "opt.inner",
                "users",
                "users[].name",
                "users[].password",
                "users[].hash",
                "list",
                "pool",
                "pool.min",
                "pool.max",
                "nodes",
                "nodes[].name",
                "nodes[].role",
                "nodes.real",
            ]
        );
        let get = |p: &str| keys.iter().find(|k| k.path == p).unwrap();
        assert_eq!(get("admin_http").text, "The endpoint.");
        assert_eq!(get("admin_http.listen").value, "1.2.3.4:5");
        assert_eq!(get("admin_http.listen").text, "where and more");
        assert!(get("opt").commented_out && get("opt.inner").commented_out);
        assert_eq!(get("opt").text, "optional thing");
        assert!(!get("plain").commented_out);
        assert_eq!(get("users[].password").text, "secret");
        assert_eq!(get("users[].hash").value, "\"*AB#C\"");
        assert_eq!(get("list").value, "[1, 2]");
        assert_eq!(get("pool.max").value, "64");
        assert_eq!(get("nodes.real").text, "Some prose: illustration: 1");
    }

    #[test]
    fn the_config_page_lists_every_key_and_the_whole_example() {
        let page = render_config("demo", "extra: help", "a:\n  b: 1  # the b\n.dot: x\n");
        assert!(page.starts_with(".TH demo.yaml 5 "), "{page}");
        assert!(page.contains("\\fBa.b\\fR: 1\nthe b\n"), "{page}");
        assert!(page.contains(".SH EXAMPLE"), "{page}");
        assert!(page.contains("\n\\&.dot: x\n"), "{page}");
        assert!(page.contains("extra: help"), "{page}");
    }
}
