//! Client-port framing: every frame is a 4-byte big-endian length followed by that many payload
//! bytes (reference §2), except that the very first 4 bytes of a connection may be a
//! four-letter word (`ruok`, `stat`, ...), answered in plain text by the shell.
//!
//! Invariants of [`FrameDecoder`]:
//! - a four-letter word is recognised only as the first 4 bytes of the connection and only for a
//!   command ZooKeeper knows (as `NIOServerCnxn.checkFourLetterWord` does while the connection is
//!   uninitialised); afterwards the same bytes are a length;
//! - a length `< 0` or `> max_frame_bytes` is rejected as soon as its 4 bytes arrive, before the
//!   body is buffered, and the decoder then stays failed (ZooKeeper closes with no reply);
//! - after a four-letter word the decoder yields nothing more: the connection is answered and
//!   closed;
//! - consumed bytes are dropped lazily (amortised O(1) per byte), so many small frames do not
//!   shift the whole buffer each time.

/// One unit decoded from a client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A length-prefixed payload (without its length).
    Payload(Vec<u8>),
    /// A four-letter word sent as the first bytes of the connection.
    FourLetterWord {
        /// The 4 command bytes (e.g. `*b"ruok"`, or `[0xff, 0xf4, 0xff, 0xfd]` for telnet close).
        cmd: [u8; 4],
        /// The 8-byte argument of `stmk` (the trace mask); `None` for every other command.
        arg: Option<i64>,
    },
}

/// Why a connection's byte stream cannot be framed. The connection is closed with no reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// A length field below 0 or above the maximum frame size.
    BadLength(i64),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadLength(len) => write!(f, "bad frame length {len}"),
        }
    }
}

impl std::error::Error for FrameError {}

/// The four-letter words ZooKeeper recognises (`FourLetterCommands`), plus telnet's close
/// sequence (IAC IP IAC DO, 0xfff4fffd), which ZooKeeper also treats as a command.
pub const FOUR_LETTER_WORDS: [[u8; 4]; 19] = [
    *b"ruok",
    *b"stat",
    *b"srvr",
    *b"conf",
    *b"cons",
    *b"crst",
    *b"srst",
    *b"envi",
    *b"dump",
    *b"wchs",
    *b"wchc",
    *b"wchp",
    *b"mntr",
    *b"isro",
    *b"dirs",
    *b"gtmk",
    *b"stmk",
    *b"hash",
    [0xff, 0xf4, 0xff, 0xfd],
];

/// True when `cmd` is a four-letter word ZooKeeper knows.
pub fn is_four_letter_word(cmd: &[u8; 4]) -> bool {
    FOUR_LETTER_WORDS.contains(cmd)
}

/// Prefixes `payload` with its 4-byte big-endian length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = i32::try_from(payload.len()).expect("frame payload above i32::MAX bytes");
    assert!(len >= 0);
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    assert!(out.len() == payload.len() + 4);
    out
}

/// Where the decoder is in the connection's byte stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Nothing decoded yet: the first 4 bytes may be a four-letter word.
    Start,
    /// Ordinary length-prefixed frames.
    Frames,
    /// A four-letter word was decoded; nothing more is yielded.
    Done,
    /// A bad length was seen; the error is repeated.
    Failed(FrameError),
}

/// Incremental decoder for one client connection: push bytes as they arrive, pull frames.
#[derive(Clone, Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    state: State,
}

/// Below this many consumed bytes the buffer is not compacted (cheap to keep).
const COMPACT_MIN_BYTES: usize = 4096;

impl FrameDecoder {
    /// A decoder for a new connection; frames longer than `max_frame_bytes` are rejected
    /// (ZooKeeper's `jute.maxbuffer`, 1,048,575 by default).
    pub fn new(max_frame_bytes: usize) -> FrameDecoder {
        FrameDecoder { max_frame_bytes, buf: Vec::new(), start: 0, state: State::Start }
    }

    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        assert!(self.start <= self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start >= COMPACT_MIN_BYTES && self.start * 2 >= self.buf.len() {
            // The consumed prefix is at least half the buffer, so moving the rest is paid for
            // by the bytes consumed since the last compaction.
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes pushed but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        assert!(self.start <= self.buf.len());
        self.buf.len() - self.start
    }

    /// Frees the buffer once every pushed byte has been returned in a frame, so that an idle
    /// connection holds no memory here (a half-received frame keeps its bytes).
    pub fn release_if_drained(&mut self) {
        assert!(self.start <= self.buf.len());
        if self.start == self.buf.len() {
            self.buf = Vec::new();
            self.start = 0;
        }
        assert!(self.buf.capacity() == 0 || self.buffered() > 0);
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn consume(&mut self, n: usize) {
        assert!(n <= self.buffered(), "consuming more than is buffered");
        self.start += n;
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the framing error that
    /// ends the connection (returned again on every later call).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.state {
            State::Failed(err) => Err(err),
            State::Done => Ok(None),
            State::Start => self.next_first_frame(),
            State::Frames => self.next_payload(),
        }
    }

    fn next_first_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        assert!(self.state == State::Start);
        let Some(head) = self.pending().first_chunk::<4>().copied() else {
            return Ok(None);
        };
        if !is_four_letter_word(&head) {
            self.state = State::Frames;
            return self.next_payload();
        }
        let arg = if head == *b"stmk" {
            let Some(arg) = self.pending().get(4..12) else {
                return Ok(None);
            };
            let arg = i64::from_be_bytes(arg.try_into().expect("slice of 8 bytes"));
            self.consume(8);
            Some(arg)
        } else {
            None
        };
        self.consume(4);
        self.state = State::Done;
        Ok(Some(Frame::FourLetterWord { cmd: head, arg }))
    }

    fn next_payload(&mut self) -> Result<Option<Frame>, FrameError> {
        assert!(self.state == State::Frames);
        let Some(head) = self.pending().first_chunk::<4>().copied() else {
            return Ok(None);
        };
        let len = i32::from_be_bytes(head);
        let len_ok = usize::try_from(len).ok().filter(|&l| l <= self.max_frame_bytes);
        let Some(len) = len_ok else {
            let err = FrameError::BadLength(i64::from(len));
            self.state = State::Failed(err);
            return Err(err);
        };
        let Some(payload) = self.pending().get(4..4 + len) else {
            return Ok(None);
        };
        let payload = payload.to_vec();
        self.consume(4 + len);
        assert!(payload.len() == len);
        Ok(Some(Frame::Payload(payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_pushes() {
        let mut d = FrameDecoder::new(100);
        let mut bytes = frame(b"hello");
        bytes.extend(frame(b""));
        for b in &bytes[..6] {
            d.push(&[*b]);
            assert_eq!(d.next_frame(), Ok(None));
        }
        d.push(&bytes[6..]);
        assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(b"hello".to_vec()))));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(vec![]))));
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn drained_decoder_holds_no_buffer_but_keeps_a_partial_frame() {
        let mut d = FrameDecoder::new(100);
        let bytes = frame(b"hello");
        d.push(&bytes[..6]);
        d.release_if_drained();
        assert_eq!(d.buffered(), 6, "half a frame must survive");
        d.push(&bytes[6..]);
        assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(b"hello".to_vec()))));
        d.release_if_drained();
        assert_eq!(d.buf.capacity(), 0);
        d.push(&frame(b"x"));
        assert_eq!(d.next_frame(), Ok(Some(Frame::Payload(b"x".to_vec()))));
    }
}
