//! Reading a text-protocol result set, for the few queries a daemon runs
//! itself (heartbeats, replication status), where rows are small and
//! wanted by column name.

use super::packets::{parse_reply, ParseError, Reply, ServerErr};

/// A whole text result set: column names and rows of nullable strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl Rows {
    /// The first row's first value (`SELECT @@x`); `None` for NULL or no row.
    pub fn scalar(&self) -> Option<&str> {
        self.rows.first()?.first()?.as_deref()
    }

    /// The value of `column` in row `row`; `None` for NULL, a missing row
    /// or a missing column alike.
    pub fn get(&self, row: usize, column: &str) -> Option<&str> {
        let c = self
            .columns
            .iter()
            .position(|n| n.eq_ignore_ascii_case(column))?;
        self.rows.get(row)?.get(c)?.as_deref()
    }
}

/// Decodes the payloads of one reply (as the response tracker delimited
/// it): an OK is an empty result, an ERR is the server's error.
pub fn decode_rows<P: AsRef<[u8]>>(payloads: &[P]) -> Result<Rows, ParseError> {
    let mut it = payloads.iter().map(AsRef::as_ref);
    let first = it.next().ok_or(ParseError::Empty)?;
    match parse_reply(first)? {
        Reply::Ok { .. } => return Ok(Rows::default()),
        Reply::Err(e) => return Err(ParseError::ServerError(e)),
        Reply::Other(_) => {}
    }
    let bad = |what: &str| ParseError::Malformed("result set", what.to_owned());
    let mut at = first;
    let count = lenenc_int(&mut at).ok_or_else(|| bad("column count"))?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c > 0 && c <= 4096)
        .ok_or_else(|| bad("column count out of range"))?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        let mut def = it.next().ok_or_else(|| bad("missing column definition"))?;
        // catalog, schema, table, org_table, then the name.
        for _ in 0..4 {
            lenenc_bytes(&mut def).ok_or_else(|| bad("column definition"))?;
        }
        let name = lenenc_bytes(&mut def).ok_or_else(|| bad("column name"))?;
        columns.push(String::from_utf8_lossy(name).into_owned());
    }
    if !it.next().is_some_and(is_eof) {
        return Err(bad("no EOF after the column definitions"));
    }
    let mut rows = Vec::new();
    for mut p in it {
        if is_eof(p) {
            return Ok(Rows { columns, rows });
        }
        if p.first() == Some(&0xFF) {
            let err = match parse_reply(p)? {
                Reply::Err(e) => e,
                _ => ServerErr {
                    code: 0,
                    sql_state: "HY000".into(),
                    message: "malformed ERR".into(),
                },
            };
            return Err(ParseError::ServerError(err));
        }
        let mut row = Vec::with_capacity(count);
        for _ in 0..count {
            if p.first() == Some(&0xFB) {
                p = &p[1..];
                row.push(None);
            } else {
                let v = lenenc_bytes(&mut p).ok_or_else(|| bad("row value"))?;
                row.push(Some(String::from_utf8_lossy(v).into_owned()));
            }
        }
        rows.push(row);
    }
    Err(bad("no EOF after the rows"))
}

fn is_eof(p: &[u8]) -> bool {
    p.first() == Some(&0xFE) && p.len() < 9
}

fn lenenc_int(b: &mut &[u8]) -> Option<u64> {
    let (&first, rest) = b.split_first()?;
    let width = match first {
        0..=0xFA => {
            *b = rest;
            return Some(u64::from(first));
        }
        0xFC => 2,
        0xFD => 3,
        0xFE => 8,
        _ => return None,
    };
    let bytes = rest.get(..width)?;
    *b = &rest[width..];
    let mut v = [0u8; 8];
    v[..width].copy_from_slice(bytes);
    Some(u64::from_le_bytes(v))
}

fn lenenc_bytes<'a>(b: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(lenenc_int(b)?).ok()?;
    let v = b.get(..len)?;
    *b = &b[len..];
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::packets::{err_payload, text_result_set, Ok as OkPacket};
    use mysql_common::constants::StatusFlags;

    #[test]
    fn reads_back_what_the_encoder_wrote() {
        let rows = vec![
            vec![Some("db-1".to_owned()), None],
            vec![Some("x".repeat(300)), Some(String::new())],
        ];
        let payloads = text_result_set(&["Name", "Lag"], &rows, StatusFlags::empty());
        let got = decode_rows(&payloads).unwrap();
        assert_eq!(got.columns, ["Name", "Lag"]);
        assert_eq!(got.rows, rows);
        assert_eq!(got.get(0, "name"), Some("db-1"));
        assert_eq!(got.get(0, "lag"), None);
        assert_eq!(got.get(1, "Lag"), Some(""));
        assert_eq!(got.get(2, "Name"), None);
        assert_eq!(got.scalar(), Some("db-1"));
        assert_eq!(Rows::default().scalar(), None);
    }

    #[test]
    fn ok_is_empty_and_err_is_the_servers() {
        let ok = OkPacket::default().to_payload();
        assert_eq!(decode_rows(&[ok]).unwrap(), Rows::default());
        let err = err_payload(1227, "42000", "Access denied; you need SUPER");
        match decode_rows(&[err]) {
            Err(ParseError::ServerError(e)) => assert_eq!(e.code, 1227),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let payloads = text_result_set(&["a"], &[vec![Some("v".into())]], StatusFlags::empty());
        for cut in 0..payloads.len() {
            assert!(decode_rows(&payloads[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_rows(&[&[0xFC_u8, 1][..]]).is_err());
        assert!(decode_rows(&[&[1u8][..], &[3u8, b'a'][..]]).is_err());
    }
}
