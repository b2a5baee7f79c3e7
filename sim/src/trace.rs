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

/// `FNV_PRIME` to the powers 0..=8: FNV-1a over a zero byte only multiplies by the prime, so
/// `k` zero bytes in a row are one multiply by `FNV_PRIME_POW[k]`.
const FNV_PRIME_POW: [u64; 9] = {
    let mut pow = [1u64; 9];
    let mut k = 1;
    while k < 9 {
        pow[k] = pow[k - 1].wrapping_mul(FNV_PRIME);
        k += 1;
    }
    pow
};

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

    #[inline(always)]
    fn mix(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.hash ^= *b as u64;
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    /// `mix(&v.to_le_bytes())`, with the high zero bytes (most of a time, an id or a zxid)
    /// folded into one multiply: the same hash for a quarter of the multiplies.
    #[inline(always)]
    fn mix_u64(&mut self, v: u64) {
        let used = 8 - (v.leading_zeros() / 8) as usize;
        let mut rest = v;
        for _ in 0..used {
            self.hash ^= rest & 0xff;
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
            rest >>= 8;
        }
        self.hash = self.hash.wrapping_mul(FNV_PRIME_POW[8 - used]);
    }

    /// Records one event: `tag` and `ids` and `bytes` are hashed; `line` is only called (to
    /// format the text) when text is kept.
    ///
    /// Inlined into each caller: the tag is a constant there and so are most ids (a node
    /// index, an input's kind code), so the compiler hashes them byte by byte without a loop
    /// or a length test; the same hash as the loop, at about two instructions a byte.
    #[inline(always)]
    pub fn event(
        &mut self,
        now_ns: u64,
        tag: &str,
        ids: &[u64],
        bytes: &[u8],
        line: impl FnOnce() -> String,
    ) {
        self.events += 1;
        self.mix_u64(now_ns);
        self.mix(tag.as_bytes());
        for id in ids {
            self.mix_u64(*id);
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

    /// `mix_u64` hashes as the byte-by-byte FNV-1a over the value's 8 little-endian bytes,
    /// for every count of high zero bytes (0 through 8) and after any earlier state.
    #[test]
    fn mix_u64_is_fnv_over_the_eight_bytes() {
        let mut values = vec![0u64, 1, 0xff, 0x100, u64::MAX, 1 << 63, 0x0102_0304_0506_0708];
        for shift in 0..64 {
            values.push(1u64 << shift);
            values.push((1u64 << shift) - 1);
            values.push(0x9e37_79b9_7f4a_7c15 >> shift);
        }
        let (mut fast, mut slow) = (Trace::new(false), Trace::new(false));
        for v in values {
            fast.mix_u64(v);
            slow.mix(&v.to_le_bytes());
            assert_eq!(fast.hash(), slow.hash(), "after {v:#x}");
        }
        // And the test can fail: one byte folded wrongly changes the hash.
        let mut wrong = Trace::new(false);
        wrong.mix(&5u64.to_le_bytes()[..7]);
        let mut right = Trace::new(false);
        right.mix_u64(5);
        assert_ne!(wrong.hash(), right.hash());
    }
}
