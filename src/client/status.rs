//! What a client reads from a node's refusals beyond `api::metadata`'s readers (which the
//! node shares), and the caller identity it puts on its requests.

use tonic::{Code, Status};

use crate::api;
use crate::api::metadata::CallerSeq;
use crate::api::metadata::{is_not_leader, is_state_machine, CALLER_ID_KEY, CALLER_SEQ_KEY};
use crate::fsm::FsmError;

/// The state machine's refusal a status carries, if it is one (the wire's result codes are
/// gRPC's, number for number).
pub fn fsm_error(status: &Status) -> Option<FsmError> {
    let refusal = match status.code() {
        Code::FailedPrecondition => !is_not_leader(status),
        // Only the state machine's: tonic's own OutOfRange is an answer over the size limit, a
        // node's own ResourceExhausted is "overloaded, retry", and its own PermissionDenied is
        // a caller outside its role.
        Code::OutOfRange | Code::ResourceExhausted | Code::PermissionDenied => is_state_machine(status),
        _ => true,
    };
    let code = api::ResultCode::try_from(status.code() as i32).ok()?;
    refusal.then(|| crate::codec::wire::fsm_error_of(code)).flatten()
}

/// Puts a caller identity into a request's metadata.
pub fn set_caller<T>(request: &mut tonic::Request<T>, caller: &CallerSeq) {
    let md = request.metadata_mut();
    if let Ok(v) = caller.caller.parse() {
        md.insert(CALLER_ID_KEY, v);
    }
    if let Ok(v) = caller.seq.to_string().parse() {
        md.insert(CALLER_SEQ_KEY, v);
    }
}
