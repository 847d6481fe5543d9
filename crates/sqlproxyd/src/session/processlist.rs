//! `SHOW [FULL] PROCESSLIST`, answered by the proxy: the user's sessions
//! with the ids their handshakes gave.

use std::time::Instant;

use anyhow::Result;
use futures::SinkExt;
use hastack_proto::mysql::packets::Status;
use hastack_proto::mysql::Packet;
use hastack_proto::sql::Token;

use super::Session;

/// The most of a statement's text `SHOW FULL PROCESSLIST` shows, in
/// characters.
const FULL_INFO_CHARS: usize = 64 * 1024;

impl Session {
    /// `SHOW [FULL] PROCESSLIST`, answered by the proxy: this user's
    /// sessions, with the ids their handshakes gave (what `KILL` takes and
    /// `CONNECTION_ID()` returns). The backends' own lists would show their
    /// connections' ids, shared with other sessions and proxies.
    pub(super) async fn processlist(&mut self, packet: &Packet, full: bool) -> Result<()> {
        use hastack_proto::mysql::packets::{typed_text_result_set, ColumnType};
        let now = Instant::now();
        // As the server: 100 characters unless FULL; FULL is bounded too
        // (statements can be max_allowed_packet long, and a list is built
        // whole), at 64 KiB each. Only that much of each text is decoded.
        let limit = if full { FULL_INFO_CHARS } else { 100 };
        let info_of = |text: &[u8]| {
            let head = &text[..text.len().min(limit * 4)];
            String::from_utf8_lossy(head)
                .chars()
                .take(limit)
                .collect::<String>()
        };
        let own_text = info_of(&packet.payload[1..]);
        let mut rows = Vec::new();
        for (id, view) in self.registry.snapshot() {
            if view.user != self.login.user.name {
                continue;
            }
            let activity = self.registry.activity(id).unwrap_or_default();
            let (command, info) = if id == self.id {
                ("Query", Some(own_text.clone()))
            } else {
                match (&activity.running, &activity.statement) {
                    (Some(_), Some(s)) => ("Query", Some(info_of(&s[1..]))),
                    (Some(_), None) => ("Execute", None),
                    (None, _) => ("Sleep", None),
                }
            };
            let since = if id == self.id { now } else { activity.since };
            rows.push(vec![
                Some(id.to_string()),
                Some(view.user.clone()),
                Some(view.peer.to_string()),
                view.schema.clone(),
                Some(command.to_owned()),
                Some(now.saturating_duration_since(since).as_secs().to_string()),
                Some(String::new()),
                info,
                Some("0.000".to_owned()),
            ]);
        }
        use ColumnType::{
            MYSQL_TYPE_LONGLONG as Int, MYSQL_TYPE_NEWDECIMAL as Dec, MYSQL_TYPE_VAR_STRING as Text,
        };
        let columns = [
            ("Id", Int),
            ("User", Text),
            ("Host", Text),
            ("db", Text),
            ("Command", Text),
            ("Time", Int),
            ("State", Text),
            ("Info", Text),
            ("Progress", Dec),
        ];
        let mut status = Status::empty();
        if self.route.autocommit {
            status |= Status::SERVER_STATUS_AUTOCOMMIT;
        }
        if self.route.in_transaction {
            status |= Status::SERVER_STATUS_IN_TRANS;
        }
        let mut seq = packet.next_seq();
        for p in typed_text_result_set(&columns, &rows, status) {
            self.client.feed(Packet::new(seq, p)).await?;
            seq = seq.wrapping_add(1);
        }
        self.client.flush().await?;
        Ok(())
    }
}

/// `SHOW [FULL] PROCESSLIST` (alone in its text): whether FULL.
pub(super) fn processlist_asked(sql: &str) -> Option<bool> {
    // Most statements do not mention it: no lexing for them.
    if !sql
        .as_bytes()
        .windows(11)
        .any(|w| w.eq_ignore_ascii_case(b"processlist"))
    {
        return None;
    }
    let lexed = hastack_proto::sql::lex(sql, Default::default());
    let words: Vec<&str> = lexed
        .tokens
        .iter()
        .filter(|t| !matches!(t, Token::Semicolon))
        .map(|t| match t {
            Token::Word(w) => w.as_str(),
            _ => "",
        })
        .collect();
    match (words.as_slice(), lexed.unsure) {
        (["SHOW", "PROCESSLIST"], None) => Some(false),
        (["SHOW", "FULL", "PROCESSLIST"], None) => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn processlist_statements() {
        use super::processlist_asked as p;
        assert_eq!(p("show processlist"), Some(false));
        assert_eq!(p("SHOW FULL PROCESSLIST;"), Some(true));
        assert_eq!(p("/* x */ SHOW PROCESSLIST"), Some(false));
        assert_eq!(p("SELECT * FROM information_schema.PROCESSLIST"), None);
        assert_eq!(p("SHOW PROCESSLIST; SELECT 1"), None);
        assert_eq!(p("SELECT 'show processlist'"), None);
    }
}
