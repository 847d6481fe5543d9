//! Writing YAML configs by hand, for the import tools (`checkd
//! import-xinetd`, `lbd import-haproxy`, `vrrpd import-keepalived`): values
//! from foreign files must come out as scalars YAML reads back exactly,
//! comments must stay on one line, and every tool reports what it could not
//! convert the same way.

use std::fmt::{self, Write};

use crate::ExitCode;

/// A foreign config converted: the YAML, and one line for everything that
/// could not be carried over or was carried over approximately.
#[derive(Debug, PartialEq, Eq)]
pub struct Converted {
    pub yaml: String,
    pub not_converted: Vec<String>,
}

/// Input the foreign program itself would refuse, or nothing the daemon
/// can run.
#[derive(Debug, PartialEq, Eq)]
pub struct ConvertError {
    /// The file, or empty when the error is about all the files given.
    pub path: String,
    pub line: Option<usize>,
    pub message: String,
    /// When nothing could be converted: why, as `Converted::not_converted`.
    pub not_converted: Vec<String>,
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.path.as_str(), self.line) {
            ("", _) => f.write_str(&self.message),
            (path, Some(n)) => write!(f, "{path}:{n}: {}", self.message),
            (path, None) => write!(f, "{path}: {}", self.message),
        }
    }
}

impl std::error::Error for ConvertError {}

/// Prints a conversion as the import tools do (the YAML on stdout, the
/// notes and any error on stderr) and gives the exit code.
/// The text of the file an import command names in its argument `arg`
/// (a required one), with its path; or, having said on stderr why it cannot
/// be read, the exit code to return.
pub fn read_input(m: &clap::ArgMatches, arg: &str) -> Result<(String, String), ExitCode> {
    let Some(path) = m.get_one::<String>(arg) else {
        return Err(ExitCode::Config);
    };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok((path.clone(), text)),
        Err(e) => {
            eprintln!("{path}: cannot read: {e}");
            Err(ExitCode::Config)
        }
    }
}

pub fn report(result: Result<Converted, ConvertError>) -> ExitCode {
    let (notes, outcome) = match &result {
        Ok(out) => (&out.not_converted, Ok(&out.yaml)),
        Err(e) => (&e.not_converted, Err(e)),
    };
    if let Ok(yaml) = outcome {
        print!("{yaml}");
    }
    for n in notes {
        eprintln!("not converted: {n}");
    }
    match outcome {
        Ok(_) => ExitCode::Ok,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::Config
        }
    }
}

/// A YAML scalar for any string: single-quoted, or double-quoted with
/// escapes where it holds characters a single-quoted scalar cannot.
pub fn yaml_str(s: &str) -> String {
    let special = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}');
    if !s.chars().any(special) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if special(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe in a YAML comment or a note (one line, printable).
pub fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_read_back_exactly() {
        for s in [
            "plain",
            "it's",
            "tab\there",
            "back\\slash \"q\"",
            "line\nbreak",
            "\u{2028}",
        ] {
            let yaml = format!("v: {}\n", yaml_str(s));
            let v: std::collections::BTreeMap<String, String> =
                serde_yaml::from_str(&yaml).unwrap();
            assert_eq!(v["v"], s, "{yaml}");
        }
        assert_eq!(comment("a\nb"), "a?b");
    }
}
