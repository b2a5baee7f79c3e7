//! The trace: every simulator event is hashed (FNV-1a, 64 bit) and, when asked, also written
//! as one text line. The hash covers the same facts whether or not text is kept, so a replay
//! with `--trace` has the hash of the campaign run. Two runs of one seed must give equal hashes
//! (the determinism check); the text is for people.
//!
//! Line format: `<time µs, 6 decimals of s> <tag> <fields...>`, e.g.
//! `1.204117 n1.recv c3 frame 24B`.

use std::fmt::Write;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A running trace hash with optional text.
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    text: Option<String>,
    events: u64,
}

impl Trace {
    /// A trace that keeps text lines when `keep_text` is set.
    pub fn new(keep_text: bool) -> Trace {
        Trace { hash: FNV_OFFSET, text: keep_text.then(String::new), events: 0 }
    }

    fn mix(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= *b as u64;
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    /// Records one event: `tag` and `ids` and `bytes` are hashed; `line` is only called (to
    /// format the text) when text is kept.
    pub fn event(
        &mut self,
        now_ns: u64,
        tag: &str,
        ids: &[u64],
        bytes: &[u8],
        line: impl FnOnce() -> String,
    ) {
        self.events += 1;
        self.mix(&now_ns.to_le_bytes());
        self.mix(tag.as_bytes());
        for id in ids {
            self.mix(&id.to_le_bytes());
        }
        self.mix(bytes);
        if let Some(text) = &mut self.text {
            let secs = now_ns / 1_000_000_000;
            let micros = (now_ns % 1_000_000_000) / 1_000;
            let _ = writeln!(text, "{secs}.{micros:06} {tag} {}", line());
        }
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Events recorded so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// The text, if kept.
    pub fn into_text(self) -> Option<String> {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_whether_text_is_kept_but_not_the_facts() {
        let mut a = Trace::new(true);
        let mut b = Trace::new(false);
        a.event(5, "x", &[1, 2], b"ab", || "one".into());
        b.event(5, "x", &[1, 2], b"ab", || unreachable!("text not kept"));
        assert_eq!(a.hash(), b.hash());
        let mut c = Trace::new(false);
        c.event(5, "x", &[1, 3], b"ab", String::new);
        assert_ne!(a.hash(), c.hash());
        assert_eq!(a.into_text().unwrap(), "0.000000 x one\n");
    }
}
