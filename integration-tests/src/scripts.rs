//! The classic status script of the HAProxy + Mycat guides, which xinetd
//! runs per connection on port 48700: tests and benchmarks run it under
//! xinetd and under checkd's exec service, side by side.

/// The script, checking the MySQL server on 127.0.0.1:`port` with the
/// `mariadb` CLI as app/app. (xinetd passes no environment, so the port is
/// written into the text.)
pub fn mycat_status(port: u16) -> String {
    SCRIPT.replace("$PROXY_PORT", &port.to_string())
}

const SCRIPT: &str = r#"#!/bin/bash
# /usr/local/bin/mycat_status: is the SQL proxy serving?
out=$(mariadb -h127.0.0.1 -P"$PROXY_PORT" -uapp -papp -N -e "select 1" 2>/dev/null)
if [ "$out" = "1" ]; then
    /bin/echo -e "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 15\r\n\r\nMycat is alive.\r\n"
else
    /bin/echo -e "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 14\r\n\r\nMycat is dead.\r\n"
fi
"#;
