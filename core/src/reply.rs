//! Pure helpers that turn outcomes into client replies: write results (incl. multi result
//! shapes), auth packets into ids, and ids into whoAmI answers.

use crate::config::Config;
use crate::proto::client::{ClientInfo, MultiResult, OpCode, Response};
use crate::proto::error::ZkError;
use crate::tree::ApplyOutcome;
use crate::types::Id;

/// How to build the reply of a write once its txn is applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplyShape {
    /// create (1): CreateResponse; create2/container/TTL: Create2Response.
    Create(OpCode),
    /// delete, closeSession: no body.
    Empty,
    /// setData / setACL: a Stat.
    Stat,
    /// multi: the ops' codes, for the create vs create2 result form.
    Multi(Vec<OpCode>),
}

/// The `(err, body)` of a write's reply, from its applied outcome.
pub(crate) fn write_reply(
    shape: &ReplyShape,
    outcome: &ApplyOutcome,
) -> (ZkError, Option<Response>) {
    match (shape, outcome) {
        (_, ApplyOutcome::Failed(err)) => (*err, None),
        (ReplyShape::Create(OpCode::Create), ApplyOutcome::Created { path, .. }) => {
            (ZkError::Ok, Some(Response::Create { path: path.to_string() }))
        }
        (ReplyShape::Create(_), ApplyOutcome::Created { path, stat }) => {
            (ZkError::Ok, Some(Response::Create2 { path: path.to_string(), stat: *stat }))
        }
        (ReplyShape::Stat, ApplyOutcome::DataSet { stat } | ApplyOutcome::AclSet { stat }) => {
            (ZkError::Ok, Some(Response::Stat(*stat)))
        }
        (ReplyShape::Multi(ops), ApplyOutcome::Multi(outcomes)) => {
            assert!(ops.is_empty() || ops.len() == outcomes.len(), "one outcome per multi op");
            let results = outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| multi_result(ops.get(i).copied().unwrap_or(OpCode::Check), o))
                .collect();
            (ZkError::Ok, Some(Response::Multi(results)))
        }
        (ReplyShape::Empty, _) => (ZkError::Ok, None),
        (shape, outcome) => panic!("outcome {outcome:?} does not fit reply shape {shape:?}"),
    }
}

fn multi_result(op: OpCode, outcome: &ApplyOutcome) -> MultiResult {
    match outcome {
        ApplyOutcome::Failed(err) => MultiResult::Error(*err),
        ApplyOutcome::Created { path, .. } if op == OpCode::Create => {
            MultiResult::Create { path: path.to_string() }
        }
        ApplyOutcome::Created { path, stat } => {
            MultiResult::Create2 { path: path.to_string(), stat: *stat }
        }
        ApplyOutcome::Deleted => MultiResult::Delete,
        ApplyOutcome::DataSet { stat } => MultiResult::SetData { stat: *stat },
        ApplyOutcome::Checked => MultiResult::Check,
        other => panic!("outcome {other:?} cannot be inside a multi"),
    }
}

/// The ids an auth packet adds, or the error that closes the connection.
pub(crate) fn authenticate(
    config: &Config,
    scheme: &str,
    auth: &[u8],
    current: &[Id],
) -> Result<Vec<Id>, ZkError> {
    match scheme {
        "digest" => {
            let Ok(text) = std::str::from_utf8(auth) else {
                return Err(ZkError::AuthFailed);
            };
            let digest = crate::tree::acl::digest_id(text);
            let mut ids = Vec::new();
            if config.super_digest.as_deref() == Some(digest.as_str()) {
                ids.push(Id::new("super", ""));
            }
            ids.push(Id::new("digest", &digest));
            Ok(ids)
        }
        // `addauth ip` only adds the remote address again.
        "ip" => Ok(current.iter().filter(|id| id.scheme == "ip").cloned().collect()),
        _ => Err(ZkError::AuthFailed),
    }
}

/// whoAmI: one ClientInfo per id; user = the provider's user name.
pub(crate) fn who_am_i(ids: &[Id]) -> Vec<ClientInfo> {
    ids.iter()
        .map(|id| {
            let user = match id.scheme.as_str() {
                "digest" => id.id.split(':').next().unwrap_or("").to_string(),
                "super" => String::new(),
                _ => id.id.clone(),
            };
            ClientInfo { auth_scheme: id.scheme.clone(), user }
        })
        .collect()
}
