//! Where a server's reply to one command ends.
//!
//! A proxy streams replies packet by packet; it must know, without
//! buffering, when the reply to a command is complete (to take the next
//! command, or to return the connection), whether more result sets follow,
//! and when the server waits for the client (LOAD DATA LOCAL INFILE). This
//! is that knowledge as a pure state machine: feed it each payload.
//! It assumes the connection did not negotiate CLIENT_DEPRECATE_EOF (the
//! proxy never offers it, so every client sees classic EOF packets).

use mysql_common::constants::StatusFlags;

/// The command a reply answers, as far as the reply's shape goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// COM_QUERY and COM_STMT_EXECUTE: OK, ERR, LOCAL INFILE or result sets.
    ResultSets,
    /// COM_STMT_PREPARE: OK with parameter and column definitions, or ERR.
    Prepare,
    /// COM_FIELD_LIST: column definitions up to an EOF, or ERR.
    FieldList,
    /// COM_STMT_FETCH: rows up to an EOF, or ERR.
    Fetch,
    /// One packet whatever it is (COM_STATISTICS, and OK/ERR/EOF replies).
    OnePacket,
}

/// What the proxy should do after a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// More packets of this reply follow.
    More,
    /// The reply is complete. `status` comes from its last OK/EOF (or is
    /// empty after an ERR).
    Done { status: StatusFlags, error: bool },
    /// The server asked for a local file: forward the client's packets
    /// up to and including an empty one, then keep reading the reply.
    LocalInfile,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    First,
    Columns { left: u64, then_rows: bool },
    ColumnsEof { then_rows: bool },
    Rows,
    PrepareParams { params: u64, columns: u64 },
    PrepareColumns { columns: u64 },
    AfterInfile,
}

/// Tracks one reply.
#[derive(Clone, Debug)]
pub struct Reply {
    expect: Expect,
    state: State,
}

/// A reply that cannot be valid MySQL protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unexpected packet in a server reply: {0}")]
pub struct BadReply(&'static str);

impl Reply {
    pub fn new(expect: Expect) -> Self {
        Reply {
            expect,
            state: match expect {
                Expect::FieldList => State::Columns {
                    left: u64::MAX,
                    then_rows: false,
                },
                Expect::Fetch => State::Rows,
                _ => State::First,
            },
        }
    }

    /// Feeds the next payload of the reply.
    pub fn step(&mut self, payload: &[u8]) -> Result<Step, BadReply> {
        let first = *payload.first().ok_or(BadReply("empty packet"))?;
        let is_eof = first == 0xFE && payload.len() < 9;
        if first == 0xFF {
            // An ERR ends the reply wherever it comes.
            return Ok(Step::Done {
                status: StatusFlags::empty(),
                error: true,
            });
        }
        match (self.state, self.expect) {
            (_, Expect::OnePacket) => Ok(self.done(ok_status(payload))),
            (State::First | State::AfterInfile, Expect::Prepare) => {
                if first != 0x00 || payload.len() < 12 {
                    return Err(BadReply("COM_STMT_PREPARE reply is not an OK"));
                }
                let columns = u64::from(u16::from_le_bytes([payload[5], payload[6]]));
                let params = u64::from(u16::from_le_bytes([payload[7], payload[8]]));
                Ok(self.after_prepare(params, columns))
            }
            (State::First | State::AfterInfile, _) => match first {
                0x00 => Ok(self.more_results_or_done(ok_status(payload))),
                0xFB if self.state == State::First => {
                    self.state = State::AfterInfile;
                    Ok(Step::LocalInfile)
                }
                _ => {
                    let n = lenenc(payload).ok_or(BadReply("bad column count"))?;
                    if n == 0 {
                        return Err(BadReply("zero column count"));
                    }
                    self.state = State::Columns {
                        left: n,
                        then_rows: true,
                    };
                    Ok(Step::More)
                }
            },
            (State::Columns { left, then_rows }, _) => {
                if is_eof {
                    // COM_FIELD_LIST ends on this EOF; a result set never does.
                    return if then_rows {
                        Err(BadReply("EOF before all column definitions"))
                    } else {
                        Ok(self.done(eof_status(payload)))
                    };
                }
                let left = left - 1;
                self.state = if left == 0 {
                    State::ColumnsEof { then_rows }
                } else {
                    State::Columns { left, then_rows }
                };
                Ok(Step::More)
            }
            (State::ColumnsEof { then_rows }, _) => {
                if !is_eof {
                    return Err(BadReply("no EOF after column definitions"));
                }
                let status = eof_status(payload);
                // A cursor was opened (COM_STMT_EXECUTE with a cursor): rows
                // come later through COM_STMT_FETCH.
                if !then_rows || status.contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS) {
                    return Ok(self.done(status));
                }
                self.state = State::Rows;
                Ok(Step::More)
            }
            (State::Rows, _) => {
                if is_eof {
                    let status = eof_status(payload);
                    return Ok(if self.expect == Expect::Fetch {
                        self.done(status)
                    } else {
                        self.more_results_or_done(status)
                    });
                }
                Ok(Step::More)
            }
            (State::PrepareParams { params, columns }, _) => {
                if params == 0 {
                    if !is_eof {
                        return Err(BadReply("no EOF after parameter definitions"));
                    }
                    return Ok(self.after_prepare_params(columns));
                }
                self.state = State::PrepareParams {
                    params: params - 1,
                    columns,
                };
                Ok(Step::More)
            }
            (State::PrepareColumns { columns }, _) => {
                if columns == 0 {
                    if !is_eof {
                        return Err(BadReply("no EOF after column definitions"));
                    }
                    return Ok(self.done(StatusFlags::empty()));
                }
                self.state = State::PrepareColumns {
                    columns: columns - 1,
                };
                Ok(Step::More)
            }
        }
    }

    fn done(&mut self, status: StatusFlags) -> Step {
        self.state = State::First;
        Step::Done {
            status,
            error: false,
        }
    }

    fn more_results_or_done(&mut self, status: StatusFlags) -> Step {
        if status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
            self.state = State::First;
            Step::More
        } else {
            self.done(status)
        }
    }

    fn after_prepare(&mut self, params: u64, columns: u64) -> Step {
        if params > 0 {
            self.state = State::PrepareParams { params, columns };
            Step::More
        } else {
            self.after_prepare_params(columns)
        }
    }

    fn after_prepare_params(&mut self, columns: u64) -> Step {
        if columns > 0 {
            self.state = State::PrepareColumns { columns };
            Step::More
        } else {
            self.done(StatusFlags::empty())
        }
    }
}

/// Status flags of an OK packet: after the header and two length-encoded integers.
fn ok_status(p: &[u8]) -> StatusFlags {
    let mut i = 1;
    for _ in 0..2 {
        i += match p.get(i) {
            Some(0xFC) => 3,
            Some(0xFD) => 4,
            Some(0xFE) => 9,
            Some(_) => 1,
            None => return StatusFlags::empty(),
        };
    }
    p.get(i..i + 2)
        .map(|s| StatusFlags::from_bits_truncate(u16::from_le_bytes([s[0], s[1]])))
        .unwrap_or(StatusFlags::empty())
}

/// Status flags of an EOF packet: header, warnings (2), status (2).
fn eof_status(p: &[u8]) -> StatusFlags {
    p.get(3..5)
        .map(|s| StatusFlags::from_bits_truncate(u16::from_le_bytes([s[0], s[1]])))
        .unwrap_or(StatusFlags::empty())
}

fn lenenc(p: &[u8]) -> Option<u64> {
    let le = |n: usize| -> Option<u64> {
        let b = p.get(1..1 + n)?;
        Some(b.iter().rev().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    };
    match *p.first()? {
        x @ 0..=0xFA => Some(u64::from(x)),
        0xFC => le(2),
        0xFD => le(3),
        0xFE => le(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MORE: u16 = 0x0008; // SERVER_MORE_RESULTS_EXISTS
    const CURSOR: u16 = 0x0040; // SERVER_STATUS_CURSOR_EXISTS

    fn ok(status: u16) -> Vec<u8> {
        let s = status.to_le_bytes();
        vec![0x00, 0, 0, s[0], s[1], 0, 0]
    }
    fn eof(status: u16) -> Vec<u8> {
        let s = status.to_le_bytes();
        vec![0xFE, 0, 0, s[0], s[1]]
    }
    const COL: &[u8] =
        b"\x03def\x00\x00\x00\x01a\x00\x0c\x3f\x00\x0b\x00\x00\x00\x03\x00\x00\x00\x00\x00";
    const ROW: &[u8] = b"\x011";
    const ERR: &[u8] = b"\xff\x15\x04#28000denied";

    fn run(expect: Expect, packets: &[&[u8]]) -> Vec<Step> {
        let mut r = Reply::new(expect);
        packets.iter().map(|p| r.step(p).unwrap()).collect()
    }

    fn done(status: u16) -> Step {
        Step::Done {
            status: StatusFlags::from_bits_truncate(status),
            error: false,
        }
    }

    #[test]
    fn ok_and_err_end_a_query_at_once() {
        assert_eq!(run(Expect::ResultSets, &[&ok(2)]), [done(2)]);
        assert_eq!(
            run(Expect::ResultSets, &[ERR]),
            [Step::Done {
                status: StatusFlags::empty(),
                error: true
            }]
        );
    }

    #[test]
    fn a_result_set_ends_on_the_eof_after_its_rows() {
        let steps = run(
            Expect::ResultSets,
            &[b"\x02", COL, COL, &eof(0), ROW, ROW, &eof(2)],
        );
        assert_eq!(steps[..6], [Step::More; 6]);
        assert_eq!(steps[6], done(2));
    }

    #[test]
    fn multi_results_continue_while_the_flag_is_set() {
        let steps = run(
            Expect::ResultSets,
            &[
                b"\x01",
                COL,
                &eof(0),
                ROW,
                &eof(MORE | 2),
                &ok(MORE),
                b"\x01",
                COL,
                &eof(0),
                &eof(2),
            ],
        );
        assert_eq!(steps[..9], [Step::More; 9]);
        assert_eq!(steps[9], done(2));
    }

    #[test]
    fn an_error_in_the_middle_of_rows_ends_the_reply() {
        let steps = run(Expect::ResultSets, &[b"\x01", COL, &eof(0), ROW, ERR]);
        assert_eq!(
            steps[4],
            Step::Done {
                status: StatusFlags::empty(),
                error: true
            }
        );
    }

    #[test]
    fn a_row_starting_with_0xfe_is_a_row_when_long() {
        let mut long_row = vec![0xFE];
        long_row.extend_from_slice(&[0; 8]);
        let steps = run(
            Expect::ResultSets,
            &[b"\x01", COL, &eof(0), &long_row, &eof(0)],
        );
        assert_eq!(steps[3], Step::More);
        assert_eq!(steps[4], done(0));
    }

    #[test]
    fn local_infile_waits_for_the_client_then_reads_the_ok() {
        let mut r = Reply::new(Expect::ResultSets);
        assert_eq!(r.step(b"\xfb/tmp/data.csv").unwrap(), Step::LocalInfile);
        assert_eq!(r.step(&ok(2)).unwrap(), done(2));
    }

    #[test]
    fn prepare_reads_params_and_columns() {
        // stmt id 1, 1 column, 2 params.
        let prep = b"\x00\x01\x00\x00\x00\x01\x00\x02\x00\x00\x00\x00";
        let steps = run(Expect::Prepare, &[prep, COL, COL, &eof(0), COL, &eof(0)]);
        assert_eq!(steps[..5], [Step::More; 5]);
        assert_eq!(steps[5], done(0));
        let none = b"\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
        assert_eq!(run(Expect::Prepare, &[none]), [done(0)]);
    }

    #[test]
    fn execute_with_a_cursor_ends_after_the_column_eof() {
        let steps = run(Expect::ResultSets, &[b"\x01", COL, &eof(CURSOR)]);
        assert_eq!(steps[2], done(CURSOR));
        assert_eq!(run(Expect::Fetch, &[ROW, &eof(0)]), [Step::More, done(0)]);
    }

    #[test]
    fn field_list_ends_on_eof() {
        assert_eq!(
            run(Expect::FieldList, &[COL, COL, &eof(0)]),
            [Step::More, Step::More, done(0)]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut r = Reply::new(Expect::ResultSets);
        assert!(r.step(&[]).is_err());
        assert!(Reply::new(Expect::ResultSets).step(b"\x00").is_ok());
        assert!(Reply::new(Expect::ResultSets).step(b"\xfc\x01").is_err());
        assert!(Reply::new(Expect::Prepare).step(b"\x00\x01").is_err());
        let mut r = Reply::new(Expect::ResultSets);
        r.step(b"\x01").unwrap();
        r.step(COL).unwrap();
        assert!(r.step(ROW).is_err(), "a row where the column EOF belongs");
    }
}
