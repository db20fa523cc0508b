// Operations and their results as the messages of one format, `pb`: `Op` ↔ (`OpType`, the
// encoded request message), and `Result<Reply, FsmError>` ↔ `ApplyOpResponse`. codec.rs
// includes it once for the published API and once for the disk format, whose messages began
// as the same and keep the same names and fields: one conversion for both. Should a message
// of one change, this stops compiling for that one, and the change decides here whether the
// other follows.

use bytes::Bytes;
use prost::Message;

use super::{client, invalid, job_id, required_client, secs_u32, timeout, DecodeError};
use crate::fsm::{ClientKey, FsmError, Op, Reply, ReserveOutcome};
use pb::{OpType, ReservationStatus, ResultCode};

/// The kind of an operation, as this format names it.
pub fn encode_op_type(op: &Op) -> OpType {
    match op {
        Op::Put { .. } => OpType::Put,
        Op::Reserve { .. } => OpType::Reserve,
        Op::ReserveJob { .. } => OpType::ReserveJob,
        Op::Delete { .. } => OpType::Delete,
        Op::Release { .. } => OpType::Release,
        Op::Bury { .. } => OpType::Bury,
        Op::Touch { .. } => OpType::Touch,
        Op::Kick { .. } => OpType::Kickn,
        Op::KickJob { .. } => OpType::Kick,
        Op::MoveJob { .. } => OpType::MoveJob,
        Op::PauseTube { .. } => OpType::PauseTube,
        Op::Use { .. } => OpType::UseTube,
        Op::Watch { .. } => OpType::WatchTube,
        Op::Ignore { .. } => OpType::IgnoreTube,
        Op::ClientHello { .. } => OpType::ClientHello,
        Op::DiscardPut { .. } => OpType::DiscardPut,
        Op::ClientGone { .. } => OpType::ClientGone,
        Op::ProxyGone { .. } => OpType::ProxyGone,
        Op::ProxyLease { .. } => OpType::ProxyLease,
        Op::Tick => OpType::Tick,
        Op::NewLeader => OpType::NewLeader,
    }
}

/// An operation in this format: its kind and its encoded request message.
pub fn encode_op(op: &Op) -> (OpType, Vec<u8>) {
    let split = |c: &ClientKey| (c.proxy.to_string(), c.client.to_string());
    let split_opt = |c: &Option<ClientKey>| c.as_ref().map(split).unwrap_or_default();
    match op {
        Op::Put { client, tube, pri, delay_secs, ttr_secs, body } => {
            let (proxy_id, client_id) = split_opt(client);
            let m = pb::PutRequest {
                priority: *pri,
                delay: i64::from(*delay_secs),
                ttr: *ttr_secs as i32,
                tube_name: tube.clone(),
                body_size: body.len() as i32,
                body: body.clone(),
                proxy_id,
                client_id,
            };
            (OpType::Put, m.encode_to_vec())
        }
        Op::Reserve { client, request_id, timeout_secs, tubes } => {
            let (proxy_id, client_id) = split(client);
            let m = pb::ReserveRequest {
                client_id,
                request_id: request_id.clone(),
                timeout_secs: timeout_secs.map_or(-1, |t| t.min(i32::MAX as u32) as i32),
                watched_tubes: tubes.clone(),
                proxy_id,
            };
            (OpType::Reserve, m.encode_to_vec())
        }
        Op::ReserveJob { client, id } => {
            let (proxy_id, client_id) = split(client);
            (OpType::ReserveJob, pb::ReserveJobRequest { job_id: *id as i64, client_id, proxy_id }.encode_to_vec())
        }
        Op::Delete { client, id } => {
            let (proxy_id, client_id) = split_opt(client);
            (OpType::Delete, pb::DeleteRequest { job_id: *id as i64, proxy_id, client_id }.encode_to_vec())
        }
        Op::Release { client, id, pri, delay_secs } => {
            let (proxy_id, client_id) = split(client);
            let m = pb::ReleaseRequest {
                job_id: *id as i64,
                client_id,
                proxy_id,
                delay: i64::from(*delay_secs),
                priority: *pri,
            };
            (OpType::Release, m.encode_to_vec())
        }
        Op::Bury { client, id, pri } => {
            let (proxy_id, client_id) = split(client);
            (OpType::Bury, pb::BuryRequest { job_id: *id as i64, priority: *pri, client_id, proxy_id }.encode_to_vec())
        }
        Op::Touch { client, id } => {
            let (proxy_id, client_id) = split(client);
            (OpType::Touch, pb::TouchRequest { job_id: *id as i64, client_id, proxy_id }.encode_to_vec())
        }
        Op::Kick { tube, bound } => {
            let bound = (*bound).min(i32::MAX as u32) as i32;
            (OpType::Kickn, pb::KickNRequest { tube_name: tube.clone(), bound }.encode_to_vec())
        }
        Op::KickJob { id } => (OpType::Kick, pb::KickRequest { job_id: *id as i64 }.encode_to_vec()),
        Op::MoveJob { id, tube } => {
            (OpType::MoveJob, pb::MoveJobRequest { job_id: *id as i64, tube_name: tube.clone() }.encode_to_vec())
        }
        Op::PauseTube { tube, delay_secs } => {
            let m = pb::PauseTubeRequest { tube_name: tube.clone(), delay: i64::from(*delay_secs) };
            (OpType::PauseTube, m.encode_to_vec())
        }
        Op::Use { client, tube } => {
            let (proxy_id, client_id) = split(client);
            (OpType::UseTube, pb::UseTubeRequest { tube_name: tube.clone(), client_id, proxy_id }.encode_to_vec())
        }
        Op::Watch { client, tube } => {
            let (proxy_id, client_id) = split(client);
            (OpType::WatchTube, pb::WatchTubeRequest { tube_name: tube.clone(), client_id, proxy_id }.encode_to_vec())
        }
        Op::Ignore { client, tube } => {
            let (proxy_id, client_id) = split(client);
            (OpType::IgnoreTube, pb::IgnoreTubeRequest { tube_name: tube.clone(), client_id, proxy_id }.encode_to_vec())
        }
        Op::ClientHello { client } => {
            let (proxy_id, client_id) = split(client);
            (OpType::ClientHello, pb::ClientHelloRequest { proxy_id, client_id }.encode_to_vec())
        }
        Op::DiscardPut { client } => {
            let (proxy_id, client_id) = split(client);
            (OpType::DiscardPut, pb::DiscardPutRequest { proxy_id, client_id }.encode_to_vec())
        }
        Op::ClientGone { client } => {
            let (proxy_id, client_id) = split(client);
            (OpType::ClientGone, pb::ClientGoneRequest { proxy_id, client_ids: vec![client_id] }.encode_to_vec())
        }
        Op::ProxyGone { proxy } => (OpType::ProxyGone, pb::ProxyGoneRequest { proxy_id: proxy.clone() }.encode_to_vec()),
        Op::ProxyLease { proxy, lease_secs } => {
            let m = pb::ProxyLeaseRequest { proxy_id: proxy.clone(), lease_secs: *lease_secs };
            (OpType::ProxyLease, m.encode_to_vec())
        }
        Op::Tick => (OpType::Tick, Vec::new()),
        Op::NewLeader => (OpType::NewLeader, pb::NewLeaderRequest {}.encode_to_vec()),
    }
}

/// An operation as the log records it (or a proxy forwards it), from `caller` (empty: no
/// deduplication) with its sequence number; the leader stamps its time when it proposes it.
pub fn op_request(op: &Op, caller_id: String, caller_seq: u64) -> pb::ApplyOpRequest {
    let (kind, body) = encode_op(op);
    pb::ApplyOpRequest { op: kind as i32, now_secs: 0, body: body.into(), now_ms: 0, caller_id, caller_seq }
}

fn decode<M: Message + Default>(body: &[u8]) -> Result<M, DecodeError> {
    M::decode(body).map_err(|e| invalid(format!("undecodable request: {e}")))
}

/// The operation a message carries: in a log entry, or forwarded; the same conversion a gRPC
/// write goes through at the edge (`Op::try_from`), so what the log holds is exactly what the
/// edge lets in.
pub fn decode_op(op: OpType, body: &[u8]) -> Result<Op, DecodeError> {
    match op {
        OpType::Put => Op::try_from(&decode::<pb::PutRequest>(body)?),
        OpType::Reserve => Op::try_from(&decode::<pb::ReserveRequest>(body)?),
        OpType::ReserveJob => Op::try_from(&decode::<pb::ReserveJobRequest>(body)?),
        OpType::Delete => Op::try_from(&decode::<pb::DeleteRequest>(body)?),
        OpType::Release => Op::try_from(&decode::<pb::ReleaseRequest>(body)?),
        OpType::Bury => Op::try_from(&decode::<pb::BuryRequest>(body)?),
        OpType::Touch => Op::try_from(&decode::<pb::TouchRequest>(body)?),
        OpType::Kickn => Op::try_from(&decode::<pb::KickNRequest>(body)?),
        OpType::Kick => Op::try_from(&decode::<pb::KickRequest>(body)?),
        OpType::MoveJob => Op::try_from(&decode::<pb::MoveJobRequest>(body)?),
        OpType::PauseTube => Op::try_from(&decode::<pb::PauseTubeRequest>(body)?),
        OpType::UseTube => Op::try_from(&decode::<pb::UseTubeRequest>(body)?),
        OpType::WatchTube => Op::try_from(&decode::<pb::WatchTubeRequest>(body)?),
        OpType::IgnoreTube => Op::try_from(&decode::<pb::IgnoreTubeRequest>(body)?),
        OpType::ClientHello => Op::try_from(&decode::<pb::ClientHelloRequest>(body)?),
        OpType::DiscardPut => Op::try_from(&decode::<pb::DiscardPutRequest>(body)?),
        OpType::ClientGone => {
            let m: pb::ClientGoneRequest = decode(body)?;
            let [client_id] = m.client_ids.as_slice() else {
                return Err(invalid("a logged client-gone names exactly one client"));
            };
            Ok(Op::ClientGone { client: required_client(&m.proxy_id, client_id)? })
        }
        OpType::ProxyGone => Ok(Op::ProxyGone { proxy: decode::<pb::ProxyGoneRequest>(body)?.proxy_id }),
        OpType::ProxyLease => Op::try_from(&decode::<pb::ProxyLeaseRequest>(body)?),
        OpType::Tick => Ok(Op::Tick),
        OpType::NewLeader => decode::<pb::NewLeaderRequest>(body).map(|_| Op::NewLeader),
        other => Err(invalid(format!("{other:?} is not a logged operation"))),
    }
}

/// `impl TryFrom<&$message> for Op`, the request's fields bound to `$m`.
macro_rules! op_from {
    ($message:ty, |$m:ident| $op:expr) => {
        impl TryFrom<&$message> for Op {
            type Error = DecodeError;
            fn try_from($m: &$message) -> Result<Op, DecodeError> {
                Ok($op)
            }
        }
    };
}

/// A put; the body must be as long as it says.
impl TryFrom<&pb::PutRequest> for Op {
    type Error = DecodeError;
    fn try_from(m: &pb::PutRequest) -> Result<Op, DecodeError> {
        if usize::try_from(m.body_size).ok() != Some(m.body.len()) {
            return Err(invalid(format!("body_size {} but the body has {} bytes", m.body_size, m.body.len())));
        }
        Ok(Op::Put {
            client: client(&m.proxy_id, &m.client_id),
            tube: m.tube_name.clone(),
            pri: m.priority,
            delay_secs: secs_u32(m.delay, "delay")?,
            ttr_secs: m.ttr as u32,
            body: m.body.clone(),
        })
    }
}

op_from!(pb::ReserveRequest, |m| Op::Reserve {
    client: required_client(&m.proxy_id, &m.client_id)?,
    request_id: m.request_id.clone(),
    timeout_secs: timeout(m.timeout_secs),
    tubes: m.watched_tubes.clone(),
});
op_from!(pb::ReserveJobRequest, |m| Op::ReserveJob { client: required_client(&m.proxy_id, &m.client_id)?, id: job_id(m.job_id)? });
op_from!(pb::DeleteRequest, |m| Op::Delete { client: client(&m.proxy_id, &m.client_id), id: job_id(m.job_id)? });
op_from!(pb::ReleaseRequest, |m| Op::Release {
    client: required_client(&m.proxy_id, &m.client_id)?,
    id: job_id(m.job_id)?,
    pri: m.priority,
    delay_secs: secs_u32(m.delay, "delay")?,
});
op_from!(pb::BuryRequest, |m| Op::Bury { client: required_client(&m.proxy_id, &m.client_id)?, id: job_id(m.job_id)?, pri: m.priority });
op_from!(pb::TouchRequest, |m| Op::Touch { client: required_client(&m.proxy_id, &m.client_id)?, id: job_id(m.job_id)? });
op_from!(pb::KickNRequest, |m| Op::Kick {
    tube: m.tube_name.clone(),
    bound: u32::try_from(m.bound).map_err(|_| invalid(format!("kick bound {} is negative", m.bound)))?,
});
op_from!(pb::KickRequest, |m| Op::KickJob { id: job_id(m.job_id)? });
op_from!(pb::MoveJobRequest, |m| Op::MoveJob { id: job_id(m.job_id)?, tube: m.tube_name.clone() });
op_from!(pb::PauseTubeRequest, |m| Op::PauseTube { tube: m.tube_name.clone(), delay_secs: secs_u32(m.delay, "pause delay")? });
op_from!(pb::UseTubeRequest, |m| Op::Use { client: required_client(&m.proxy_id, &m.client_id)?, tube: m.tube_name.clone() });
op_from!(pb::WatchTubeRequest, |m| Op::Watch { client: required_client(&m.proxy_id, &m.client_id)?, tube: m.tube_name.clone() });
op_from!(pb::IgnoreTubeRequest, |m| Op::Ignore { client: required_client(&m.proxy_id, &m.client_id)?, tube: m.tube_name.clone() });
op_from!(pb::ClientHelloRequest, |m| Op::ClientHello { client: required_client(&m.proxy_id, &m.client_id)? });
op_from!(pb::DiscardPutRequest, |m| Op::DiscardPut { client: required_client(&m.proxy_id, &m.client_id)? });
op_from!(pb::ProxyLeaseRequest, |m| Op::ProxyLease { proxy: m.proxy_id.clone(), lease_secs: m.lease_secs });

/// A client-gone request as one operation per client it names, each needing a client.
pub fn clients_gone(m: &pb::ClientGoneRequest) -> Result<Vec<Op>, DecodeError> {
    m.client_ids.iter().map(|client_id| Ok(Op::ClientGone { client: required_client(&m.proxy_id, client_id)? })).collect()
}

/// The code of each state-machine error: one code each, never a catch-all.
pub fn result_code(e: &FsmError) -> ResultCode {
    match e {
        FsmError::NotFound => ResultCode::NotFound,
        FsmError::WrongState => ResultCode::FailedPrecondition,
        FsmError::NotYours => ResultCode::PermissionDenied,
        FsmError::LastWatchedTube => ResultCode::OutOfRange,
        FsmError::BadArgument(_) => ResultCode::InvalidArgument,
        FsmError::OutOfMemory => ResultCode::ResourceExhausted,
    }
}

/// The state-machine error a code stands for (`result_code` undone); none for a code
/// no state-machine error has. A bad argument's own words do not travel with the code.
pub fn fsm_error_of(code: ResultCode) -> Option<FsmError> {
    Some(match code {
        ResultCode::NotFound => FsmError::NotFound,
        ResultCode::FailedPrecondition => FsmError::WrongState,
        ResultCode::PermissionDenied => FsmError::NotYours,
        ResultCode::OutOfRange => FsmError::LastWatchedTube,
        ResultCode::InvalidArgument => FsmError::BadArgument("refused by the cluster"),
        ResultCode::ResourceExhausted => FsmError::OutOfMemory,
        _ => return None,
    })
}

/// A reservation outcome as a `Reservation` (ids filled in by the caller).
pub fn reservation(outcome: Option<&ReserveOutcome>) -> pb::Reservation {
    let mut r = pb::Reservation::default();
    match outcome {
        None => r.set_status(ReservationStatus::Queued),
        Some(ReserveOutcome::TimedOut) => r.set_status(ReservationStatus::Timeout),
        Some(ReserveOutcome::DeadlineSoon) => r.set_status(ReservationStatus::DeadlineSoon),
        Some(ReserveOutcome::Reserved { id, body }) => {
            r.set_status(ReservationStatus::Matched);
            r.job_id = *id as i64;
            r.body_size = body.len() as i32;
            r.body = body.clone();
        }
    }
    r
}

/// A result as it is cached for retried writes (`log`) and answered (`wire`).
pub fn encode_result(result: &Result<Reply, FsmError>) -> pb::ApplyOpResponse {
    let reply = match result {
        Err(e) => {
            return pb::ApplyOpResponse {
                error_code: result_code(e) as i32,
                error_message: e.to_string(),
                body: Bytes::new(),
            }
        }
        Ok(reply) => reply,
    };
    let body = match reply {
        Reply::Done => Vec::new(),
        Reply::Put { id } => pb::PutResponse { job_id: *id as i64 }.encode_to_vec(),
        Reply::Reserve(outcome) => pb::ReserveResponse { reservation: Some(reservation(outcome.as_ref())) }.encode_to_vec(),
        Reply::ReservedJob { id, body } => {
            let outcome = ReserveOutcome::Reserved { id: *id, body: body.clone() };
            pb::ReserveResponse { reservation: Some(reservation(Some(&outcome))) }.encode_to_vec()
        }
        Reply::Kicked { count } => pb::KickNResponse { jobs_kicked: *count as i32 }.encode_to_vec(),
        Reply::Watching { count } => pb::WatchTubeResponse { watching_count: *count }.encode_to_vec(),
        Reply::Lease { was_live } => pb::ProxyLeaseResponse { lease_was_live: *was_live }.encode_to_vec(),
    };
    pb::ApplyOpResponse { error_code: ResultCode::Ok as i32, error_message: String::new(), body: body.into() }
}

/// What a reservation came to (`reservation` undone): none while it waits.
pub fn outcome_from(r: &pb::Reservation) -> Result<Option<ReserveOutcome>, DecodeError> {
    Ok(match r.status() {
        ReservationStatus::Queued => None,
        ReservationStatus::Timeout => Some(ReserveOutcome::TimedOut),
        ReservationStatus::DeadlineSoon => Some(ReserveOutcome::DeadlineSoon),
        ReservationStatus::Matched => Some(ReserveOutcome::Reserved { id: job_id(r.job_id)?, body: r.body.clone() }),
        other => return Err(invalid(format!("reservation status {other:?} in a cached result"))),
    })
}

/// A cached result back as the machine's result, given the operation it answered.
pub fn decode_result(op: OpType, response: &pb::ApplyOpResponse) -> Result<Result<Reply, FsmError>, DecodeError> {
    let code = ResultCode::try_from(response.error_code).map_err(|_| invalid("unknown result code"))?;
    let error = match code {
        ResultCode::Ok => None,
        other => Some(fsm_error_of(other).ok_or_else(|| invalid(format!("result code {other:?} in a cached result")))?),
    };
    if let Some(e) = error {
        return Ok(Err(e));
    }
    let body = &response.body[..];
    Ok(Ok(match op {
        OpType::Put => Reply::Put { id: job_id(decode::<pb::PutResponse>(body)?.job_id)? },
        OpType::Reserve => {
            let r = decode::<pb::ReserveResponse>(body)?.reservation.unwrap_or_default();
            Reply::Reserve(outcome_from(&r)?)
        }
        OpType::ReserveJob => {
            let r = decode::<pb::ReserveResponse>(body)?.reservation.unwrap_or_default();
            match outcome_from(&r)? {
                Some(ReserveOutcome::Reserved { id, body }) => Reply::ReservedJob { id, body },
                _ => return Err(invalid("a cached reserve-job result holds no job")),
            }
        }
        OpType::Kickn => Reply::Kicked { count: decode::<pb::KickNResponse>(body)?.jobs_kicked.max(0) as u32 },
        OpType::WatchTube | OpType::IgnoreTube => {
            Reply::Watching { count: decode::<pb::WatchTubeResponse>(body)?.watching_count }
        }
        OpType::ProxyLease => Reply::Lease { was_live: decode::<pb::ProxyLeaseResponse>(body)?.lease_was_live },
        _ => Reply::Done,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;


    fn c() -> ClientKey {
        ClientKey::new("p1", "c1")
    }

    /// Each shape of write request that could not apply is refused by the conversion the
    /// gRPC edge and the log share: a write naming no client (neither proxy nor client id)
    /// where one is needed, a negative id, bound or time, a body that is not as long as it
    /// says, a client-gone that names no client.
    #[test]
    fn requests_that_would_not_apply_are_refused() {
        let refused: Vec<(&str, Result<Op, DecodeError>)> = vec![
            ("release without a client", Op::try_from(&pb::ReleaseRequest { job_id: 1, ..Default::default() })),
            ("bury without a client", Op::try_from(&pb::BuryRequest { job_id: 1, ..Default::default() })),
            ("touch without a client", Op::try_from(&pb::TouchRequest { job_id: 1, ..Default::default() })),
            ("reserve without a client", Op::try_from(&pb::ReserveRequest::default())),
            ("reserve-job without a client", Op::try_from(&pb::ReserveJobRequest { job_id: 1, ..Default::default() })),
            ("use without a client", Op::try_from(&pb::UseTubeRequest { tube_name: "t".into(), ..Default::default() })),
            ("watch without a client", Op::try_from(&pb::WatchTubeRequest { tube_name: "t".into(), ..Default::default() })),
            ("ignore without a client", Op::try_from(&pb::IgnoreTubeRequest { tube_name: "t".into(), ..Default::default() })),
            ("hello without a client", Op::try_from(&pb::ClientHelloRequest::default())),
            ("discarded put without a client", Op::try_from(&pb::DiscardPutRequest::default())),
            ("a negative job id", Op::try_from(&pb::KickRequest { job_id: -1 })),
            ("a negative delete id", Op::try_from(&pb::DeleteRequest { job_id: -5, ..Default::default() })),
            ("a negative kick bound", Op::try_from(&pb::KickNRequest { tube_name: "t".into(), bound: -1 })),
            ("a negative pause", Op::try_from(&pb::PauseTubeRequest { tube_name: "t".into(), delay: -1 })),
            ("a negative release delay", Op::try_from(&pb::ReleaseRequest { job_id: 1, delay: -1, proxy_id: "p".into(), client_id: "c".into(), ..Default::default() })),
            ("a body shorter than said", Op::try_from(&pb::PutRequest { body_size: 3, body: Bytes::from_static(b"ab"), ..Default::default() })),
            ("a negative move id", Op::try_from(&pb::MoveJobRequest { job_id: -2, tube_name: "t".into() })),
        ];
        for (what, result) in refused {
            assert!(result.is_err(), "{what} was let through: {result:?}");
        }
        let gone = pb::ClientGoneRequest { proxy_id: String::new(), client_ids: vec!["a".into(), String::new()] };
        assert!(clients_gone(&gone).is_err(), "a request naming no client among several is refused before any is written");
        let named = pb::ReleaseRequest { job_id: 1, proxy_id: "p".into(), client_id: "c".into(), ..Default::default() };
        assert_eq!(Op::try_from(&named), Ok(Op::Release { client: ClientKey::new("p", "c"), id: 1, pri: 0, delay_secs: 0 }));
    }

    /// Every kind of operation survives encode then decode unchanged.
    #[test]
    fn ops_round_trip() {
        let ops = vec![
            Op::Put { client: Some(c()), tube: "t".into(), pri: u32::MAX, delay_secs: 5, ttr_secs: u32::MAX, body: Bytes::from_static(b"x\r\ny") },
            Op::Put { client: None, tube: "default".into(), pri: 0, delay_secs: 0, ttr_secs: 1, body: Bytes::new() },
            Op::Reserve { client: c(), request_id: "r".into(), timeout_secs: None, tubes: vec![] },
            Op::Reserve { client: c(), request_id: "r".into(), timeout_secs: Some(0), tubes: vec!["a".into(), "b".into()] },
            Op::ReserveJob { client: c(), id: 7 },
            Op::Delete { client: Some(c()), id: 1 },
            Op::Delete { client: None, id: 1 },
            Op::Release { client: c(), id: 2, pri: 3, delay_secs: 4 },
            Op::Bury { client: c(), id: 2, pri: 9 },
            Op::Touch { client: c(), id: 2 },
            Op::Kick { tube: "t".into(), bound: 10 },
            Op::KickJob { id: 3 },
            Op::PauseTube { tube: "t".into(), delay_secs: 60 },
            Op::Use { client: c(), tube: "u".into() },
            Op::Watch { client: c(), tube: "w".into() },
            Op::Ignore { client: c(), tube: "w".into() },
            Op::ClientHello { client: c() },
            Op::DiscardPut { client: c() },
            Op::ClientGone { client: c() },
            Op::ProxyGone { proxy: "p1".into() },
            Op::ProxyLease { proxy: "p1".into(), lease_secs: 30 },
            Op::Tick,
            Op::NewLeader,
        ];
        for op in ops {
            let (kind, body) = encode_op(&op);
            assert_eq!(encode_op_type(&op), kind);
            assert_eq!(decode_op(kind, &body), Ok(op));
        }
    }

    /// Every kind of result survives encode then decode, errors keeping their kind.
    #[test]
    fn results_round_trip() {
        let cases: Vec<(OpType, Result<Reply, FsmError>)> = vec![
            (OpType::Put, Ok(Reply::Put { id: 9 })),
            (OpType::Reserve, Ok(Reply::Reserve(None))),
            (OpType::Reserve, Ok(Reply::Reserve(Some(ReserveOutcome::TimedOut)))),
            (OpType::Reserve, Ok(Reply::Reserve(Some(ReserveOutcome::DeadlineSoon)))),
            (OpType::Reserve, Ok(Reply::Reserve(Some(ReserveOutcome::Reserved { id: 4, body: Bytes::from_static(b"b") })))),
            (OpType::ReserveJob, Ok(Reply::ReservedJob { id: 4, body: Bytes::from_static(b"b") })),
            (OpType::Kickn, Ok(Reply::Kicked { count: 3 })),
            (OpType::WatchTube, Ok(Reply::Watching { count: 2 })),
            (OpType::Delete, Ok(Reply::Done)),
            (OpType::Delete, Err(FsmError::NotFound)),
            (OpType::Release, Err(FsmError::WrongState)),
            (OpType::Release, Err(FsmError::NotYours)),
            (OpType::IgnoreTube, Err(FsmError::LastWatchedTube)),
            (OpType::Put, Err(FsmError::OutOfMemory)),
        ];
        for (op, result) in cases {
            assert_eq!(decode_result(op, &encode_result(&result)), Ok(result));
        }
    }

    /// Each state-machine error has its own wire code.
    #[test]
    fn error_codes_are_distinct() {
        let errors = [
            FsmError::NotFound,
            FsmError::WrongState,
            FsmError::NotYours,
            FsmError::LastWatchedTube,
            FsmError::BadArgument("x"),
            FsmError::OutOfMemory,
        ];
        let codes: std::collections::BTreeSet<i32> = errors.iter().map(|e| result_code(e) as i32).collect();
        assert_eq!(codes.len(), errors.len());
    }

    /// Malformed requests are errors, not panics: negative ids, a body shorter than its size,
    /// garbage bytes, and an operation that is not logged.
    #[test]
    fn malformed_requests_are_errors() {
        let put = pb::PutRequest { body_size: 5, body: Bytes::from_static(b"abc"), ..Default::default() };
        assert!(Op::try_from(&put).is_err());
        let delete = pb::DeleteRequest { job_id: -1, ..Default::default() };
        assert!(decode_op(OpType::Delete, &delete.encode_to_vec()).is_err());
        assert!(decode_op(OpType::Put, &[0xff, 0xff, 0xff]).is_err());
        assert!(decode_op(OpType::GetJob, &[]).is_err());
        let release = pb::ReleaseRequest { job_id: 1, client_id: "c".into(), delay: -5, ..Default::default() };
        assert!(decode_op(OpType::Release, &release.encode_to_vec()).is_err());
    }
}
