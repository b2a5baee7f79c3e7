//! Jute encoding of [`LoggedTxn`] in ZooKeeper's format (reference §4 "Txns", §14): a
//! `TxnHeader{long clientId, int cxid, long zxid, long time, int type}` followed by the txn record
//! for `type`. This is the byte form of txn log entries and of PROPOSAL packet data.
//!
//! | type | record |
//! |---|---|
//! | 1 (also 15 on decode) | `CreateTxn{path, data, acl, boolean ephemeral, int parentCVersion}` |
//! | 19 | `CreateContainerTxn{path, data, acl, parentCVersion}` |
//! | 21 | `CreateTTLTxn{path, data, acl, parentCVersion, long ttl}` |
//! | 2, 20 | `DeleteTxn{path}` |
//! | 5 | `SetDataTxn{path, data, version}` |
//! | 7 | `SetACLTxn{path, acl, version}` |
//! | 13 | `CheckVersionTxn{path, version}` |
//! | -10 | `CreateSessionTxn{timeOut}` |
//! | -11 | `CloseSessionTxn{vector<ustring> paths2Delete}` |
//! | -1 | `ErrorTxn{err}` |
//! | 14 | `MultiTxn{vector<Txn{int type, buffer data}>}`, `data` = the sub-txn's record |
//!
//! Invariants: `decode_txn(&encode_txn(t)) == t` for every valid txn; decoding never panics and
//! rejects trailing bytes (also inside each multi sub-txn); a multi's sub-txns are only Create,
//! Delete, SetData, Check or Error (as `txn.rs` states), checked on encode (assert: our own state)
//! and on decode (error: bytes from disk or a peer). ZooKeeper writes `create2` requests as type
//! 15 with a `CreateTxn`; we accept it when decoding so that Apache ZooKeeper logs can be read.

use crate::proto::error::{DecodeError, ZkError};
use crate::proto::jute::{self, Reader, Writer};
use crate::txn::{CreateKind, LoggedTxn, Txn, TxnHeader};
use crate::types::{SessionId, Zxid};

/// Encoded size of a `TxnHeader`.
pub const TXN_HEADER_BYTES: usize = 32;

/// Room reserved for a txn's record before encoding it: a create or setData of a short path
/// with ~100 bytes of data fits, larger ones grow the buffer as needed.
const TXN_BODY_BYTES_TYPICAL: usize = 224;

/// Encodes a txn: `TxnHeader` + its record.
pub fn encode_txn(t: &LoggedTxn) -> Vec<u8> {
    let mut w = Writer::with_capacity(TXN_HEADER_BYTES + TXN_BODY_BYTES_TYPICAL);
    write_txn(&mut w, t);
    w.into_inner()
}

/// Writes a txn: `TxnHeader` + its record.
pub fn write_txn(w: &mut Writer, t: &LoggedTxn) {
    let start = w.len();
    w.write_i64(t.header.session_id.0);
    w.write_i32(t.header.cxid);
    w.write_i64(t.header.zxid.0);
    w.write_i64(t.header.time_ms);
    w.write_i32(t.txn.type_code());
    assert!(w.len() - start == TXN_HEADER_BYTES);
    write_txn_body(w, &t.txn);
}

/// The encoded size of a txn with `txn` as its record (header included), as the log and the
/// peers will carry it.
pub fn encoded_txn_len(txn: &Txn) -> usize {
    let mut w = Writer::with_capacity(TXN_BODY_BYTES_TYPICAL);
    write_txn_body(&mut w, txn);
    TXN_HEADER_BYTES + w.len()
}

/// Decodes a txn that fills `bytes` exactly.
pub fn decode_txn(bytes: &[u8]) -> Result<LoggedTxn, DecodeError> {
    let mut r = Reader::new(bytes);
    let t = read_txn(&mut r)?;
    r.finish("txn")?;
    Ok(t)
}

/// Reads one txn (header + record) and leaves the reader after it, e.g. before a `TxnDigest`.
pub fn read_txn(r: &mut Reader<'_>) -> Result<LoggedTxn, DecodeError> {
    let header = TxnHeader {
        session_id: SessionId(r.read_i64("TxnHeader.clientId")?),
        cxid: r.read_i32("TxnHeader.cxid")?,
        zxid: Zxid(r.read_i64("TxnHeader.zxid")?),
        time_ms: r.read_i64("TxnHeader.time")?,
    };
    let type_code = r.read_i32("TxnHeader.type")?;
    let txn = read_txn_body(type_code, r, true)?;
    Ok(LoggedTxn { header, txn })
}

/// True for the txn kinds a `MultiTxn` may hold.
fn allowed_in_multi(t: &Txn) -> bool {
    matches!(
        t,
        Txn::Create { .. }
            | Txn::Delete { .. }
            | Txn::SetData { .. }
            | Txn::Check { .. }
            | Txn::Error { .. }
    )
}

fn write_create(w: &mut Writer, path: &str, data: Option<&[u8]>, acl: &[crate::types::Acl]) {
    w.write_string(path);
    w.write_buffer(data);
    w.write_acls(acl);
}

fn write_txn_body(w: &mut Writer, txn: &Txn) {
    match txn {
        Txn::CreateSession { timeout_ms } => w.write_i32(*timeout_ms),
        Txn::CloseSession { paths_to_delete } => w.write_strings(paths_to_delete),
        Txn::Create { path, data, acl, kind, parent_cversion } => {
            write_create(w, path, data.as_deref(), acl);
            match kind {
                CreateKind::Persistent | CreateKind::Ephemeral => {
                    w.write_bool(*kind == CreateKind::Ephemeral);
                    w.write_i32(*parent_cversion);
                }
                CreateKind::Container => w.write_i32(*parent_cversion),
                CreateKind::Ttl(ttl) => {
                    w.write_i32(*parent_cversion);
                    w.write_i64(*ttl);
                }
            }
        }
        Txn::Delete { path } | Txn::DeleteContainer { path } => w.write_string(path),
        Txn::SetData { path, data, version } => {
            w.write_string(path);
            w.write_buffer(data.as_deref());
            w.write_i32(*version);
        }
        Txn::SetAcl { path, acl, version } => {
            w.write_string(path);
            w.write_acls(acl);
            w.write_i32(*version);
        }
        Txn::Check { path, version } => {
            w.write_string(path);
            w.write_i32(*version);
        }
        Txn::Error { err } => w.write_i32(err.code()),
        Txn::Multi(subs) => w.write_vec(subs, |w, sub| {
            assert!(allowed_in_multi(sub), "{sub:?} cannot be inside a MultiTxn");
            let mut body = Writer::new();
            write_txn_body(&mut body, sub);
            w.write_i32(sub.type_code());
            w.write_buffer(Some(body.as_slice()));
        }),
    }
}

/// Reads the record of a txn of type `type_code`; `top_level` is false inside a `MultiTxn`.
fn read_txn_body(type_code: i32, r: &mut Reader<'_>, top_level: bool) -> Result<Txn, DecodeError> {
    let txn = match type_code {
        -10 => Txn::CreateSession { timeout_ms: r.read_i32("CreateSessionTxn.timeOut")? },
        -11 => Txn::CloseSession { paths_to_delete: r.read_strings("CloseSessionTxn.paths")? },
        1 | 15 | 19 | 21 => read_create(type_code, r)?,
        2 => Txn::Delete { path: r.read_string("DeleteTxn.path")? },
        20 => Txn::DeleteContainer { path: r.read_string("DeleteTxn.path")? },
        5 => Txn::SetData {
            path: r.read_string("SetDataTxn.path")?,
            data: r.read_buffer("SetDataTxn.data")?,
            version: r.read_i32("SetDataTxn.version")?,
        },
        7 => Txn::SetAcl {
            path: r.read_string("SetACLTxn.path")?,
            acl: r.read_acls()?,
            version: r.read_i32("SetACLTxn.version")?,
        },
        13 => Txn::Check {
            path: r.read_string("CheckVersionTxn.path")?,
            version: r.read_i32("CheckVersionTxn.version")?,
        },
        -1 => {
            let code = r.read_i32("ErrorTxn.err")?;
            let Some(err) = ZkError::from_code(code) else {
                return Err(DecodeError::BadValue { what: "ErrorTxn.err", value: code.into() });
            };
            Txn::Error { err }
        }
        14 if top_level => Txn::Multi(read_multi(r)?),
        _ => {
            return Err(DecodeError::BadValue { what: "txn type", value: type_code.into() });
        }
    };
    Ok(txn)
}

fn read_create(type_code: i32, r: &mut Reader<'_>) -> Result<Txn, DecodeError> {
    let path = r.read_string("CreateTxn.path")?;
    let data = r.read_buffer("CreateTxn.data")?;
    let acl = r.read_acls()?;
    let (kind, parent_cversion) = match type_code {
        1 | 15 => {
            let ephemeral = r.read_bool("CreateTxn.ephemeral")?;
            let kind = if ephemeral { CreateKind::Ephemeral } else { CreateKind::Persistent };
            (kind, r.read_i32("CreateTxn.parentCVersion")?)
        }
        19 => (CreateKind::Container, r.read_i32("CreateContainerTxn.parentCVersion")?),
        21 => {
            let parent_cversion = r.read_i32("CreateTTLTxn.parentCVersion")?;
            (CreateKind::Ttl(r.read_i64("CreateTTLTxn.ttl")?), parent_cversion)
        }
        other => unreachable!("read_create called for txn type {other}"),
    };
    Ok(Txn::Create { path, data, acl, kind, parent_cversion })
}

/// Reads `MultiTxn{vector<Txn{int type, buffer data}>}`; each `data` must hold exactly one
/// allowed sub-txn record.
fn read_multi(r: &mut Reader<'_>) -> Result<Vec<Txn>, DecodeError> {
    // A Txn element is at least an int type and a buffer length.
    let min_element_bytes = 4 + jute::STRING_MIN_BYTES;
    let subs = r.read_vec_sized("MultiTxn.txns", min_element_bytes, |r| {
        let type_code = r.read_i32("Txn.type")?;
        let data = r.read_buffer("Txn.data")?.unwrap_or_default();
        let mut sub_reader = Reader::new(&data);
        let sub = read_txn_body(type_code, &mut sub_reader, false)?;
        sub_reader.finish("Txn.data")?;
        if !allowed_in_multi(&sub) {
            return Err(DecodeError::BadValue {
                what: "MultiTxn sub-txn type",
                value: type_code.into(),
            });
        }
        Ok(sub)
    })?;
    Ok(subs.unwrap_or_default())
}
