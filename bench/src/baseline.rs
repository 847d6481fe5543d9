//! Another build of a daemon to measure against, side by side in one run.

/// sqlproxyd config `yaml` less what a build older than the admin
/// credentials (issue 17) rejects as unknown keys (`admin_http.auth`,
/// `admin_users`): a benchmark runs no action.
pub fn older_sqlproxyd_config(yaml: &str) -> String {
    let mut out = String::new();
    let mut in_admin_users = false;
    for line in yaml.lines() {
        if line.starts_with("admin_users:") {
            in_admin_users = true;
            continue;
        }
        if in_admin_users && line.starts_with("  ") {
            continue;
        }
        in_admin_users = false;
        if line.starts_with("  auth:") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_admin_credentials_only() {
        let yaml = "admin_http:\n  listen: 1.2.3.4:5\n  auth: {token_file: /t}\nusers:\n  - {name: a}\nadmin_users:\n  - {name: d}\n  - {name: w}\ndata_hosts: []\n";
        assert_eq!(
            older_sqlproxyd_config(yaml),
            "admin_http:\n  listen: 1.2.3.4:5\nusers:\n  - {name: a}\ndata_hosts: []\n"
        );
    }
}
