//! Jute binary primitives: the encoding every ZooKeeper record uses (client protocol, txn log,
//! snapshots). See `docs/CLIENT-PROTOCOL-REFERENCE.md` §1.
//!
//! Wire rules: `int`/`long` are big-endian signed; `boolean` is one byte; `buffer`, `ustring` and
//! `vector<T>` are an `int` length (or count) followed by the content, with **-1 meaning null**.
//! Null and empty stay distinct where the model keeps them (`Option`).
//!
//! Invariants kept by [`Reader`]:
//! - it never panics on any input: every problem is a [`DecodeError`];
//! - it never allocates from a length field before checking that the remaining input can hold
//!   that many bytes (for vectors: `count * min_element_bytes`), so a forged huge length costs
//!   nothing;
//! - on error the reader's position is unspecified; callers drop it.
//!
//! [`Writer`] is the exact inverse for every value the model can hold. Lengths above `i32::MAX`
//! cannot come from valid state (frames are limited to about 1 MiB), so they panic.

use crate::proto::error::DecodeError;
use crate::types::{Acl, Id, Stat};

/// Encoded size of a `Stat` (11 fields).
pub const STAT_BYTES: usize = 68;
/// Smallest encoded `ACL`: `int perms` + two empty `ustring`s.
pub const ACL_MIN_BYTES: usize = 12;
/// Smallest encoded `ustring`/`buffer`: the length alone.
pub const STRING_MIN_BYTES: usize = 4;

/// Reads jute values from a byte slice (usually one frame payload or one log entry).
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        assert!(self.pos <= self.buf.len(), "reader position past the end");
        self.buf.len() - self.pos
    }

    /// Bytes already read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Succeeds only when every byte was read: records that must fill their frame end here.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            len => Err(DecodeError::TrailingBytes { what, len }),
        }
    }

    /// Takes the next `n` bytes, or fails without moving.
    pub fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated { what });
        }
        let start = self.pos;
        self.pos += n;
        assert!(self.pos <= self.buf.len());
        Ok(&self.buf[start..self.pos])
    }

    fn read_array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.read_bytes(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A jute `byte`.
    pub fn read_u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.read_array::<1>(what)?[0])
    }

    /// A jute `int`.
    pub fn read_i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.read_array::<4>(what)?))
    }

    /// A jute `long`.
    pub fn read_i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.read_array::<8>(what)?))
    }

    /// A jute `boolean`. Like Java's `DataInput.readBoolean`, any non-zero byte is true.
    pub fn read_bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.read_u8(what)? != 0)
    }

    /// Reads a length/count field: `None` for -1 (null); below -1 is `BadLength`; a length whose
    /// content (`len * min_element_bytes`) cannot fit in what is left is `Truncated`.
    fn read_len(
        &mut self,
        what: &'static str,
        min_element_bytes: usize,
    ) -> Result<Option<usize>, DecodeError> {
        let len = self.read_i32(what)?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len_usize) = usize::try_from(len) else {
            return Err(DecodeError::BadLength { what, len: i64::from(len) });
        };
        let needed = len_usize.checked_mul(min_element_bytes.max(1));
        match needed {
            Some(needed) if needed <= self.remaining() => Ok(Some(len_usize)),
            _ => Err(DecodeError::Truncated { what }),
        }
    }

    /// A jute `buffer`; `None` is null (length -1), distinct from an empty buffer.
    pub fn read_buffer(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.read_len(what, 1)? {
            None => Ok(None),
            Some(len) => Ok(Some(self.read_bytes(len, what)?.to_vec())),
        }
    }

    /// A jute `ustring`; `None` is null (length -1). Invalid UTF-8 is an error.
    pub fn read_ustring(&mut self, what: &'static str) -> Result<Option<String>, DecodeError> {
        match self.read_len(what, 1)? {
            None => Ok(None),
            Some(len) => {
                let bytes = self.read_bytes(len, what)?;
                match std::str::from_utf8(bytes) {
                    Ok(s) => Ok(Some(s.to_owned())),
                    Err(_) => Err(DecodeError::BadUtf8 { what }),
                }
            }
        }
    }

    /// A jute `ustring` borrowed from the input, null read as empty (no allocation: snapshot
    /// loading reads a million paths).
    pub fn read_str(&mut self, what: &'static str) -> Result<&'a str, DecodeError> {
        match self.read_len(what, 1)? {
            None => Ok(""),
            Some(len) => {
                let bytes = self.read_bytes(len, what)?;
                std::str::from_utf8(bytes).map_err(|_| DecodeError::BadUtf8 { what })
            }
        }
    }

    /// The bytes not yet read, without reading them.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// A jute `ustring` where null reads as the empty string (paths, schemes, names).
    pub fn read_string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        Ok(self.read_ustring(what)?.unwrap_or_default())
    }

    /// A jute `vector<T>`; `None` is null (count -1). The count is bounded by the remaining bytes
    /// (every jute value takes at least one byte) before anything is allocated.
    pub fn read_vec<T>(
        &mut self,
        what: &'static str,
        f: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        self.read_vec_sized(what, 1, f)
    }

    /// Like [`Reader::read_vec`], with a tighter bound: each element takes at least
    /// `min_element_bytes` on the wire.
    pub fn read_vec_sized<T>(
        &mut self,
        what: &'static str,
        min_element_bytes: usize,
        mut f: impl FnMut(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        assert!(min_element_bytes >= 1, "jute elements take at least one byte");
        let Some(count) = self.read_len(what, min_element_bytes)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let before = self.pos;
            out.push(f(self)?);
            if self.pos == before {
                // A zero-byte element could make a forged count loop for long; no jute type
                // is zero-sized, so this is a malformed input (or a buggy closure).
                return Err(DecodeError::BadValue { what, value: count as i64 });
            }
        }
        assert!(out.len() == count);
        Ok(Some(out))
    }

    /// A `vector<ustring>` where null reads as empty and null elements as empty strings.
    pub fn read_strings(&mut self, what: &'static str) -> Result<Vec<String>, DecodeError> {
        let v = self.read_vec_sized(what, STRING_MIN_BYTES, |r| r.read_string(what))?;
        Ok(v.unwrap_or_default())
    }

    /// An `Id{ustring scheme, ustring id}` (null strings read as empty).
    pub fn read_id(&mut self) -> Result<Id, DecodeError> {
        let scheme = self.read_string("Id.scheme")?;
        let id = self.read_string("Id.id")?;
        Ok(Id { scheme, id })
    }

    /// An `ACL{int perms, Id id}`.
    pub fn read_acl(&mut self) -> Result<Acl, DecodeError> {
        let perms = self.read_i32("ACL.perms")?;
        let id = self.read_id()?;
        Ok(Acl { perms, id })
    }

    /// A `vector<ACL>`; null reads as empty, as the model keeps no null ACL.
    pub fn read_acls(&mut self) -> Result<Vec<Acl>, DecodeError> {
        let v = self.read_vec_sized("vector<ACL>", ACL_MIN_BYTES, |r| r.read_acl())?;
        Ok(v.unwrap_or_default())
    }

    /// A `Stat` (68 bytes).
    pub fn read_stat(&mut self) -> Result<Stat, DecodeError> {
        if self.remaining() < STAT_BYTES {
            return Err(DecodeError::Truncated { what: "Stat" });
        }
        let start = self.pos;
        let stat = Stat {
            czxid: self.read_i64("Stat.czxid")?,
            mzxid: self.read_i64("Stat.mzxid")?,
            ctime: self.read_i64("Stat.ctime")?,
            mtime: self.read_i64("Stat.mtime")?,
            version: self.read_i32("Stat.version")?,
            cversion: self.read_i32("Stat.cversion")?,
            aversion: self.read_i32("Stat.aversion")?,
            ephemeral_owner: self.read_i64("Stat.ephemeralOwner")?,
            data_length: self.read_i32("Stat.dataLength")?,
            num_children: self.read_i32("Stat.numChildren")?,
            pzxid: self.read_i64("Stat.pzxid")?,
        };
        assert!(self.pos - start == STAT_BYTES);
        Ok(stat)
    }
}

/// Writes jute values into a growing `Vec<u8>`.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Writer {
        Writer { buf: Vec::new() }
    }

    /// An empty writer with room for `capacity` bytes: a record encoded per request (a txn, a
    /// reply) then takes one allocation instead of a doubling per field (issue 14: buffer
    /// growth was 6% of a standalone server's CPU).
    pub fn with_capacity(capacity: usize) -> Writer {
        Writer { buf: Vec::with_capacity(capacity) }
    }

    /// A writer for one frame: a length prefix to be filled in by `into_frame`, then the
    /// payload. The same bytes as `frame::frame(payload)`, without copying the payload.
    pub fn framed(capacity: usize) -> Writer {
        let mut buf = Vec::with_capacity(4 + capacity);
        buf.extend_from_slice(&[0; 4]);
        Writer { buf }
    }

    /// The frame of a `framed` writer: its length prefix set to the payload's length.
    pub fn into_frame(mut self) -> Vec<u8> {
        assert!(self.buf.len() >= 4, "a framed writer starts with its length prefix");
        assert!(self.buf[..4] == [0; 4], "the length prefix is written once, here");
        let len = i32::try_from(self.buf.len() - 4).expect("frame payload above i32::MAX bytes");
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes written so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.buf
    }

    /// The encoded bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }

    /// Raw bytes, no length prefix.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A jute `byte`.
    pub fn write_u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A jute `int`.
    pub fn write_i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A jute `long`.
    pub fn write_i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// A jute `boolean` (0 or 1).
    pub fn write_bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    fn write_len(&mut self, len: usize) {
        let len = i32::try_from(len).expect("jute length above i32::MAX: impossible for a record");
        assert!(len >= 0);
        self.write_i32(len);
    }

    /// The null marker (-1) for a buffer, ustring or vector.
    pub fn write_null(&mut self) {
        self.write_i32(-1);
    }

    /// A jute `buffer`; `None` writes null (-1).
    pub fn write_buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.write_null(),
            Some(bytes) => {
                self.write_len(bytes.len());
                self.write_bytes(bytes);
            }
        }
    }

    /// A jute `ustring`; `None` writes null (-1).
    pub fn write_ustring(&mut self, v: Option<&str>) {
        self.write_buffer(v.map(str::as_bytes));
    }

    /// A non-null jute `ustring`.
    pub fn write_string(&mut self, v: &str) {
        self.write_ustring(Some(v));
    }

    /// A non-null jute `vector<T>`, each element written by `f`.
    pub fn write_vec<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Writer, &T)) {
        self.write_len(items.len());
        for item in items {
            let before = self.buf.len();
            f(self, item);
            assert!(self.buf.len() > before, "jute elements take at least one byte");
        }
    }

    /// A non-null `vector<ustring>`.
    pub fn write_strings(&mut self, items: &[String]) {
        self.write_vec(items, |w, s| w.write_string(s));
    }

    /// An `Id`.
    pub fn write_id(&mut self, id: &Id) {
        self.write_string(&id.scheme);
        self.write_string(&id.id);
    }

    /// An `ACL`.
    pub fn write_acl(&mut self, acl: &Acl) {
        self.write_i32(acl.perms);
        self.write_id(&acl.id);
    }

    /// A non-null `vector<ACL>`.
    pub fn write_acls(&mut self, acls: &[Acl]) {
        self.write_vec(acls, |w, a| w.write_acl(a));
    }

    /// A `Stat` (68 bytes).
    pub fn write_stat(&mut self, s: &Stat) {
        let start = self.buf.len();
        self.write_i64(s.czxid);
        self.write_i64(s.mzxid);
        self.write_i64(s.ctime);
        self.write_i64(s.mtime);
        self.write_i32(s.version);
        self.write_i32(s.cversion);
        self.write_i32(s.aversion);
        self.write_i64(s.ephemeral_owner);
        self.write_i32(s.data_length);
        self.write_i32(s.num_children);
        self.write_i64(s.pzxid);
        assert!(self.buf.len() - start == STAT_BYTES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A framed writer yields the bytes `frame::frame` makes of the same payload, whether or
    /// not the payload outgrows the room reserved for it.
    #[test]
    fn a_framed_writer_matches_frame() {
        for (capacity, len) in [(0, 0), (8, 3), (4, 300), (1000, 17)] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut w = Writer::framed(capacity);
            w.write_bytes(&payload);
            assert_eq!(w.into_frame(), crate::proto::frame::frame(&payload));
        }
    }

    #[test]
    fn null_and_empty_buffers_stay_distinct() {
        let mut w = Writer::new();
        w.write_buffer(None);
        w.write_buffer(Some(&[]));
        w.write_ustring(None);
        let bytes = w.into_inner();
        assert_eq!(bytes, [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        let mut r = Reader::new(&bytes);
        assert_eq!(r.read_buffer("a").unwrap(), None);
        assert_eq!(r.read_buffer("b").unwrap(), Some(vec![]));
        assert_eq!(r.read_ustring("c").unwrap(), None);
        r.finish("t").unwrap();
    }

    #[test]
    fn huge_lengths_are_rejected_before_allocation() {
        let bytes = [0x7f, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(Reader::new(&bytes).read_buffer("b"), Err(DecodeError::Truncated { what: "b" }));
        let r = Reader::new(&bytes).read_vec("v", |r| r.read_i32("x"));
        assert_eq!(r, Err(DecodeError::Truncated { what: "v" }));
        let neg = [0xff, 0xff, 0xff, 0xfe];
        assert_eq!(
            Reader::new(&neg).read_buffer("b"),
            Err(DecodeError::BadLength { what: "b", len: -2 })
        );
    }

    #[test]
    fn vector_count_is_bounded_by_min_element_size() {
        // 3 ACLs need at least 36 bytes; 20 are present.
        let mut bytes = vec![0, 0, 0, 3];
        bytes.extend_from_slice(&[0u8; 20]);
        assert_eq!(
            Reader::new(&bytes).read_acls(),
            Err(DecodeError::Truncated { what: "vector<ACL>" })
        );
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let r = Reader::new(&[1, 2]);
        assert_eq!(r.finish("x"), Err(DecodeError::TrailingBytes { what: "x", len: 2 }));
    }
}
