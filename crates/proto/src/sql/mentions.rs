//! Which of the few words a proxy acts on a statement's text mentions at
//! all, in one pass over its bytes: most statements mention none, and then
//! nothing more is lexed for them.

/// Whether the text holds these words anywhere (any case; in strings and
/// comments too: a cheap filter before the real reading).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub kill: bool,
    pub processlist: bool,
    pub connection_id: bool,
}

impl Mentions {
    pub fn of(text: &[u8]) -> Mentions {
        let mut m = Mentions::default();
        for (i, &b) in text.iter().enumerate() {
            let at = |word: &[u8]| {
                text.get(i..i + word.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(word))
            };
            match b | 0x20 {
                b'k' => m.kill |= at(b"kill"),
                b'p' => m.processlist |= at(b"processlist"),
                b'c' => m.connection_id |= at(b"connection_id"),
                _ => {}
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::Mentions;

    #[test]
    fn words_anywhere_in_any_case() {
        assert_eq!(
            Mentions::of(b"SELECT c FROM t WHERE id = 42"),
            Mentions::default()
        );
        let m = Mentions::of(b"kill CONNECTION_ID(); show ProcessList");
        assert!(m.kill && m.processlist && m.connection_id);
        assert!(Mentions::of(b"SELECT skill").kill);
        assert!(!Mentions::of(b"SELECT kil").kill);
        assert!(!Mentions::of(b"connection_i").connection_id);
    }
}
