//! `sqlproxyd import-mycat server.xml schema.xml`: a Mycat 1.x config's
//! common subset as a sqlproxyd config, and a plain list of what could not
//! be converted.

use std::fmt::Write as _;

use clap::{Arg, ArgMatches, Command};
use hastack_rt::{ExitCode, Subcommand};
use roxmltree::{Document, Node};

pub fn subcommand() -> Subcommand {
    Subcommand {
        command: Command::new("import-mycat")
            .about("Convert Mycat's server.xml and schema.xml to a sqlproxyd config on stdout; what cannot be converted is listed on stderr")
            .arg(Arg::new("server_xml").value_name("SERVER_XML").required(true))
            .arg(Arg::new("schema_xml").value_name("SCHEMA_XML").required(true)),
        run,
    }
}

fn run(m: &ArgMatches) -> ExitCode {
    let read = |key: &str| -> Result<(String, String), String> {
        let path = m.get_one::<String>(key).cloned().unwrap_or_default();
        std::fs::read_to_string(&path)
            .map(|t| (path.clone(), t))
            .map_err(|e| format!("{path}: cannot read: {e}"))
    };
    let files = read("server_xml").and_then(|s| Ok((s, read("schema_xml")?)));
    let ((server_path, server), (schema_path, schema)) = match files {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::Config;
        }
    };
    match convert(&server, &schema) {
        Ok(out) => {
            print!("{}", out.yaml);
            for n in &out.not_converted {
                eprintln!("not converted: {n}");
            }
            ExitCode::Ok
        }
        Err(ConvertError { file, message }) => {
            let path = if file == File::Server {
                server_path
            } else {
                schema_path
            };
            eprintln!("{path}: {message}");
            ExitCode::Config
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Converted {
    pub yaml: String,
    pub not_converted: Vec<String>,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum File {
    Server,
    Schema,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ConvertError {
    pub file: File,
    pub message: String,
}

/// The `name="value"` `<property>` children of `node`.
fn property<'a>(node: Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .filter(|c| c.has_tag_name("property") && c.attribute("name") == Some(name))
        .find_map(|c| c.text())
        .map(str::trim)
}

/// `host:port` from a Mycat url; `localhost` becomes 127.0.0.1, other names
/// are kept for the user to replace (sqlproxyd wants an IP address).
fn address(url: &str, what: &str, notes: &mut Vec<String>) -> String {
    let url = url.trim().trim_start_matches("jdbc:mysql://");
    let url = url.split('/').next().unwrap_or(url);
    let (host, port) = url.rsplit_once(':').unwrap_or((url, "3306"));
    let host = if host == "localhost" {
        "127.0.0.1"
    } else {
        host
    };
    if host.parse::<std::net::IpAddr>().is_err() {
        notes.push(format!(
            "{what}: host {host:?} is a name; sqlproxyd needs an IP address there"
        ));
    }
    format!("{host}:{port}")
}

fn yaml_str(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Converts the two files' text.
pub fn convert(server_xml: &str, schema_xml: &str) -> Result<Converted, ConvertError> {
    // Mycat's files carry a DOCTYPE naming an external DTD (never fetched).
    let parse = |text, file| {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        Document::parse_with_options(text, options).map_err(|e| ConvertError {
            file,
            message: format!("not valid XML: {e}"),
        })
    };
    let server = parse(server_xml, File::Server)?;
    let schema = parse(schema_xml, File::Schema)?;
    let mut notes = Vec::new();
    let mut y = String::from(
        "# Converted from Mycat's server.xml and schema.xml by `sqlproxyd import-mycat`.\n",
    );

    let system = server.descendants().find(|n| n.has_tag_name("system"));
    let port = system
        .and_then(|s| property(s, "serverPort"))
        .unwrap_or("8066");
    let manager = system
        .and_then(|s| property(s, "managerPort"))
        .unwrap_or("9066");
    let _ = writeln!(y, "listen: 0.0.0.0:{port}");
    let _ = writeln!(
        y,
        "# Mycat binds its manager port on every address; sqlproxyd's default is loopback."
    );
    let _ = writeln!(y, "admin_listen: 127.0.0.1:{manager}");
    // Mycat lets every user run the manager port's commands; sqlproxyd's
    // admin port has accounts of its own.
    notes.push(format!(
        "manager port {manager}: Mycat's users could all run its commands; sqlproxyd's admin port takes admin_users (level monitor or admin) and answers 1227 to application users: add admin_users"
    ));
    if let Some(system) = system {
        for p in system.children().filter(|c| c.has_tag_name("property")) {
            let name = p.attribute("name").unwrap_or("?");
            if !matches!(name, "serverPort" | "managerPort") {
                notes.push(format!("server.xml system property {name}"));
            }
        }
    }

    y.push_str("users:\n");
    let users: Vec<Node> = server
        .descendants()
        .filter(|n| n.has_tag_name("user"))
        .collect();
    if users.is_empty() {
        return Err(ConvertError {
            file: File::Server,
            message: "no <user> elements".into(),
        });
    }
    for u in users {
        let name = u.attribute("name").unwrap_or_default();
        let _ = writeln!(y, "  - name: {}", yaml_str(name));
        match property(u, "password") {
            Some(p) => {
                let _ = writeln!(y, "    password: {}", yaml_str(p));
            }
            None => notes.push(format!("user {name}: no password property")),
        }
        if let Some(schemas) = property(u, "schemas") {
            let list: Vec<String> = schemas
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(yaml_str)
                .collect();
            let _ = writeln!(y, "    schemas: [{}]", list.join(", "));
        }
        if property(u, "readOnly") == Some("true") {
            y.push_str("    read_only: true\n");
        }
        for p in u.children().filter(|c| c.has_tag_name("property")) {
            let pname = p.attribute("name").unwrap_or("?");
            if !matches!(pname, "password" | "schemas" | "readOnly") {
                notes.push(format!("user {name}: property {pname}"));
            }
        }
        if u.children().any(|c| c.has_tag_name("privileges")) {
            notes.push(format!("user {name}: <privileges> (per-table DML rights)"));
        }
    }

    // dataNode name -> (dataHost, database)
    let data_nodes: Vec<(String, String, String)> = schema
        .descendants()
        .filter(|n| n.has_tag_name("dataNode"))
        .map(|n| {
            (
                n.attribute("name").unwrap_or_default().to_owned(),
                n.attribute("dataHost").unwrap_or_default().to_owned(),
                n.attribute("database").unwrap_or_default().to_owned(),
            )
        })
        .collect();

    y.push_str("data_hosts:\n");
    for h in schema.descendants().filter(|n| n.has_tag_name("dataHost")) {
        let name = h.attribute("name").unwrap_or_default();
        let _ = writeln!(y, "  - name: {}", yaml_str(name));
        let _ = writeln!(y, "    balance: {}", h.attribute("balance").unwrap_or("0"));
        let _ = writeln!(
            y,
            "    switch_type: {}",
            h.attribute("switchType").unwrap_or("1")
        );
        let min = h.attribute("minCon").unwrap_or("4");
        let max = h.attribute("maxCon").unwrap_or("64");
        let _ = writeln!(y, "    pool: {{min: {min}, max: {max}}}");
        if h.attribute("dbType").is_some_and(|t| t != "mysql") {
            notes.push(format!(
                "dataHost {name}: dbType {}",
                h.attribute("dbType").unwrap_or_default()
            ));
        }
        if h.attribute("writeType").is_some_and(|t| t != "0") {
            notes.push(format!(
                "dataHost {name}: writeType {} (sqlproxyd writes to one node)",
                h.attribute("writeType").unwrap_or_default()
            ));
        }
        if let Some(t) = h.attribute("slaveThreshold") {
            match t.trim().parse::<u32>() {
                Ok(secs) => {
                    let _ = writeln!(y, "    max_replica_lag: {secs}s");
                }
                Err(_) => notes.push(format!("dataHost {name}: slaveThreshold {t:?}")),
            }
        }
        if let Some(q) = h
            .children()
            .find(|c| c.has_tag_name("heartbeat"))
            .and_then(|hb| hb.text())
            .map(str::trim)
            .filter(|q| !q.is_empty())
        {
            let _ = writeln!(y, "    heartbeat: {{query: {}}}", yaml_str(q));
        }
        // Mycat only moves writes to the next writeHost; promoting a
        // replica and rejoining a returning master need a replication
        // account Mycat's config does not have.
        y.push_str("    failover: {promote: false, auto_rejoin: false}\n");
        notes.push(format!("dataHost {name}: failover is Mycat's (promote: false); set failover.replication_user/password and promote: true to let sqlproxyd promote replicas and rejoin a returning master"));
        let mut nodes = String::new();
        let mut credentials: Option<(String, String)> = None;
        let mut add = |n: Node, role: &str, notes: &mut Vec<String>| {
            let host = n.attribute("host").unwrap_or("node");
            let addr = address(
                n.attribute("url").unwrap_or_default(),
                &format!("dataHost {name} {host}"),
                notes,
            );
            let _ = writeln!(
                nodes,
                "      - {{name: {}, address: {addr}, role: {role}}}",
                yaml_str(host)
            );
            let cred = (
                n.attribute("user").unwrap_or_default().to_owned(),
                n.attribute("password").unwrap_or_default().to_owned(),
            );
            match &credentials {
                None => credentials = Some(cred),
                Some(c) if *c != cred => {
                    notes.push(format!("dataHost {name} {host}: its own user/password (sqlproxyd uses one account per data host)"))
                }
                Some(_) => {}
            }
        };
        for w in h.children().filter(|c| c.has_tag_name("writeHost")) {
            add(w, "write", &mut notes);
            for r in w.children().filter(|c| c.has_tag_name("readHost")) {
                add(r, "read", &mut notes);
            }
        }
        let (user, password) = credentials.unwrap_or_default();
        let _ = writeln!(
            y,
            "    user: {}\n    password: {}",
            yaml_str(&user),
            yaml_str(&password)
        );
        let _ = write!(y, "    nodes:\n{nodes}");
    }

    y.push_str("schemas:\n");
    for s in schema.descendants().filter(|n| n.has_tag_name("schema")) {
        let name = s.attribute("name").unwrap_or_default();
        if s.children().any(|c| c.has_tag_name("table")) {
            notes.push(format!(
                "schema {name}: <table> rules (sharding is not in sqlproxyd)"
            ));
        }
        let Some(dn) = s.attribute("dataNode") else {
            notes.push(format!("schema {name}: no default dataNode"));
            continue;
        };
        let Some((_, host, database)) = data_nodes.iter().find(|(n, _, _)| n == dn) else {
            notes.push(format!("schema {name}: dataNode {dn} is not defined"));
            continue;
        };
        if database != name {
            notes.push(format!(
                "schema {name}: its dataNode {dn} is database {database:?}; sqlproxyd serves a schema from the database of the same name"
            ));
        }
        let _ = writeln!(
            y,
            "  - {{name: {}, data_host: {}}}",
            yaml_str(name),
            yaml_str(host)
        );
    }
    Ok(Converted {
        yaml: y,
        not_converted: notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE mycat:server SYSTEM "server.dtd">
<mycat:server xmlns:mycat="http://io.mycat/">
  <system>
    <property name="serverPort">8066</property>
    <property name="managerPort">9066</property>
    <property name="charset">utf8</property>
  </system>
  <user name="app">
    <property name="password">app</property>
    <property name="schemas">app,sbtest</property>
  </user>
  <user name="reader">
    <property name="password">reader</property>
    <property name="schemas">app</property>
    <property name="readOnly">true</property>
  </user>
</mycat:server>"#;

    const SCHEMA: &str = r#"<?xml version="1.0"?>
<!DOCTYPE mycat:schema SYSTEM "schema.dtd">
<mycat:schema xmlns:mycat="http://io.mycat/">
  <schema name="app" checkSQLschema="false" sqlMaxLimit="100" dataNode="dn1"/>
  <schema name="sbtest" dataNode="dn2"/>
  <dataNode name="dn1" dataHost="dh1" database="app"/>
  <dataNode name="dn2" dataHost="dh1" database="sbtest"/>
  <dataHost name="dh1" maxCon="1000" minCon="10" balance="1" writeType="0" dbType="mysql" dbDriver="native" switchType="2" slaveThreshold="100">
    <heartbeat>show slave status</heartbeat>
    <writeHost host="hostM1" url="127.0.0.1:3311" user="app" password="app">
      <readHost host="hostS1" url="127.0.0.1:3312" user="app" password="app"/>
    </writeHost>
    <writeHost host="hostM2" url="localhost:3313" user="app" password="app"/>
  </dataHost>
</mycat:schema>"#;

    #[test]
    fn a_classic_mycat_config_converts_to_a_valid_one() {
        let out = convert(SERVER, SCHEMA).unwrap();
        let cfg = hastack_rt::config::parse::<crate::config::Config>(
            std::path::Path::new("imported.yaml"),
            &out.yaml,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", out.yaml));
        assert_eq!(cfg.listen.port(), 8066);
        assert_eq!(cfg.users.len(), 2);
        assert!(cfg.users[1].read_only);
        let dh = &cfg.data_hosts[0];
        assert_eq!(dh.balance, crate::config::Balance::ReplicasAndStandby);
        assert_eq!(dh.switch_type, crate::config::SwitchType::Replication);
        assert_eq!((dh.pool.min, dh.pool.max), (10, 1000));
        let roles: Vec<_> = dh
            .nodes
            .iter()
            .map(|n| (n.name.as_str(), n.role, n.address.to_string()))
            .collect();
        assert_eq!(
            roles,
            [
                (
                    "hostM1",
                    crate::config::Role::Write,
                    "127.0.0.1:3311".to_owned()
                ),
                (
                    "hostS1",
                    crate::config::Role::Read,
                    "127.0.0.1:3312".to_owned()
                ),
                (
                    "hostM2",
                    crate::config::Role::Write,
                    "127.0.0.1:3313".to_owned()
                ),
            ]
        );
        assert_eq!(cfg.schemas.len(), 2);
        let notes = out.not_converted.join("\n");
        assert!(notes.contains("system property charset"), "{notes}");
        assert!(
            notes.contains("failover is Mycat's (promote: false)"),
            "{notes}"
        );
        assert!(!notes.contains("slaveThreshold"), "{notes}");
        assert_eq!(dh.max_replica_lag, hastack_rt::Duration::from_secs(100));
        assert_eq!(dh.heartbeat.query, "show slave status");
        assert!(!dh.failover.promote && !dh.failover.auto_rejoin);
    }

    #[test]
    fn what_cannot_be_converted_is_listed() {
        let schema = SCHEMA
            .replace(r#"database="sbtest""#, r#"database="sb_other""#)
            .replace(r#"<schema name="app" checkSQLschema="false" sqlMaxLimit="100" dataNode="dn1"/>"#, r#"<schema name="app" dataNode="dn1"><table name="t" rule="mod-long" dataNode="dn1,dn2"/></schema>"#)
            .replace(r#"url="localhost:3313" user="app""#, r#"url="db3.example:3313" user="root""#);
        let out = convert(SERVER, &schema).unwrap();
        let notes = out.not_converted.join("\n");
        assert!(notes.contains("schema app: <table> rules"), "{notes}");
        assert!(
            notes.contains("schema sbtest: its dataNode dn2 is database \"sb_other\""),
            "{notes}"
        );
        assert!(notes.contains("host \"db3.example\" is a name"), "{notes}");
        assert!(notes.contains("hostM2: its own user/password"), "{notes}");
    }

    #[test]
    fn broken_xml_names_the_file() {
        assert_eq!(
            convert("<mycat:server", SCHEMA).unwrap_err().file,
            File::Server
        );
        assert_eq!(convert(SERVER, "<x>").unwrap_err().file, File::Schema);
        assert!(convert("<server/>", SCHEMA)
            .unwrap_err()
            .message
            .contains("no <user>"));
    }
}
