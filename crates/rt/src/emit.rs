//! Writing YAML configs by hand, for the import tools (`checkd
//! import-xinetd`, `lbd import-haproxy`): values from foreign files must
//! come out as scalars YAML reads back exactly, and comments must stay on
//! one line.

use std::fmt::Write;

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
