//! Finds where a key path (`backends.db.servers[1].inter`) is in a YAML text.
//!
//! serde reports a position only for errors it meets while parsing; checks
//! made afterwards (a reference to a backend that does not exist, two
//! servers with one name) know only the key path. This index maps every key
//! path in the document to the line and column of its key (or, for a
//! sequence item, of the item), so those errors point at the line too.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};

/// A 1-based line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Key path → position, for one YAML document.
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Position>,
    /// Every scalar (key or value) in document order: its key path, where
    /// it is, its text.
    scalars: Vec<(String, Position, String)>,
}

enum Frame {
    Map { prefix: String, key: Option<String> },
    Seq { prefix: String, index: usize },
}

impl Frame {
    fn child_path(&self) -> Option<String> {
        match self {
            Frame::Map { key: None, .. } => None,
            Frame::Map {
                prefix,
                key: Some(k),
            } => Some(if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            }),
            Frame::Seq { prefix, index } => Some(format!("{prefix}[{index}]")),
        }
    }

    /// A value (scalar or collection) of this frame was completed.
    fn advance(&mut self) {
        match self {
            Frame::Map { key, .. } => *key = None,
            Frame::Seq { index, .. } => *index += 1,
        }
    }
}

impl Locator {
    /// Indexes `text`; a document the YAML parser rejects gives an empty
    /// index (serde reports that error with its own position).
    pub fn new(text: &str) -> Self {
        let mut loc = Locator::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Ok((event, mark)) = parser.next_token() {
            let pos = Position {
                line: mark.line(),
                column: mark.col() + 1,
            };
            let is_value_start = matches!(
                event,
                Event::Scalar(..)
                    | Event::Alias(..)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
            );
            // A scalar where a map expects a key is the key itself.
            if let (
                Event::Scalar(ref k, ..),
                Some(Frame::Map {
                    key: key @ None,
                    prefix,
                }),
            ) = (&event, stack.last_mut())
            {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                // A block mapping's own mark is at its first ':'; its first
                // key is where a reader looks for it.
                loc.positions.entry(prefix.clone()).or_insert(pos);
                loc.positions.entry(path.clone()).or_insert(pos);
                loc.scalars.push((path, pos, k.clone()));
                *key = Some(k.clone());
                continue;
            }
            let path = match stack.last() {
                Some(frame) if is_value_start => frame.child_path(),
                None if is_value_start => Some(String::new()),
                _ => None,
            };
            if let (Some(p), false) = (&path, matches!(event, Event::MappingStart(..))) {
                loc.positions.entry(p.clone()).or_insert(pos);
            }
            if let (Some(p), Event::Scalar(v, ..)) = (&path, &event) {
                loc.scalars.push((p.clone(), pos, v.clone()));
            }
            match event {
                Event::MappingStart(..) => stack.push(Frame::Map {
                    prefix: path.unwrap_or_default(),
                    key: None,
                }),
                Event::SequenceStart(..) => stack.push(Frame::Seq {
                    prefix: path.unwrap_or_default(),
                    index: 0,
                }),
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if let Some(parent) = stack.last_mut() {
                        parent.advance();
                    }
                }
                Event::Scalar(..) | Event::Alias(..) => {
                    if let Some(parent) = stack.last_mut() {
                        parent.advance();
                    }
                }
                Event::StreamEnd => break,
                _ => {}
            }
        }
        loc
    }

    /// Every scalar of the document, keys and values, in document order:
    /// its key path (a key's own path, a value's key's), position and text.
    pub fn scalars(&self) -> impl Iterator<Item = (&str, Position, &str)> {
        self.scalars
            .iter()
            .map(|(path, pos, text)| (path.as_str(), *pos, text.as_str()))
    }

    /// Position of `path`, or of its nearest ancestor that is in the text
    /// (a missing key is reported where its parent is).
    pub fn find(&self, path: &str) -> Option<Position> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
a: 1
backends:
  db:
    servers:
      - name: one
        inter: 2s
      - name: two
        inter: fast
list: [x, {y: 1}]
";

    #[test]
    fn finds_nested_keys_and_sequence_items() {
        let loc = Locator::new(DOC);
        assert_eq!(loc.find("a"), Some(Position { line: 1, column: 1 }));
        assert_eq!(
            loc.find("backends.db"),
            Some(Position { line: 3, column: 3 })
        );
        assert_eq!(
            loc.find("backends.db.servers[1]"),
            Some(Position { line: 7, column: 9 })
        );
        assert_eq!(
            loc.find("backends.db.servers[1].inter"),
            Some(Position { line: 8, column: 9 })
        );
        assert_eq!(
            loc.find("list[1].y"),
            Some(Position {
                line: 9,
                column: 12
            })
        );
    }

    #[test]
    fn scalars_come_with_their_paths() {
        let loc = Locator::new(DOC);
        let got: Vec<(&str, Position, &str)> = loc.scalars().collect();
        assert_eq!(got[0], ("a", Position { line: 1, column: 1 }, "a"));
        assert_eq!(got[1], ("a", Position { line: 1, column: 4 }, "1"));
        assert!(got.contains(&(
            "backends.db.servers[1].inter",
            Position {
                line: 8,
                column: 16
            },
            "fast"
        )));
        assert!(got.contains(&("list[0]", Position { line: 9, column: 8 }, "x")));
    }

    #[test]
    fn missing_keys_fall_back_to_the_parent() {
        let loc = Locator::new(DOC);
        assert_eq!(
            loc.find("backends.db.servers[1].weight"),
            loc.find("backends.db.servers[1]")
        );
        assert_eq!(loc.find("nothing"), None);
    }

    #[test]
    fn broken_yaml_gives_no_positions_and_no_panic() {
        let loc = Locator::new("a: [1, 2\nb: {");
        assert_eq!(loc.find("b"), None);
    }
}
