//! The cluster over gRPC, reached at a list of node addresses: what a proxy before it
//! and a job client call. Writes go to the leader (found from NotLeader hints, else by trying
//! each node), carry this caller's id and a sequence number so a retry applies once, and are
//! retried through leader changes for up to the patience. Reads are in `query`, reservation
//! results in `reservations`.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::forward::Forwarder;
use super::metrics::{Call, ClientMetrics};
use super::retry::{next_backoff, BACKOFF_MIN, PATIENCE};
use super::status::{fsm_error, set_caller};
use super::UpstreamError;
use crate::api;
use crate::api::metadata::CallerSeq;
use crate::api::metadata::{is_not_leader, leader_hint, needs_version};
use crate::chaos::mutant;
use crate::codec::wire::{decode_result, op_request};
use crate::fsm::{FsmError, Op, Reply};
use crate::limits::CLIENT_API_ANSWER_BYTES_MAX;
use crate::security::dial::JobsApi;
use crate::security::Dialer;

/// How long one node may take to say who leads, before the next is asked.
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A call's own limit; a reserve's wait is not a call (results come on the stream).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster over gRPC.
pub struct RemoteUpstream {
    addrs: Vec<String>,
    /// One lazily connected channel per node (tonic multiplexes calls on it).
    channels: Vec<Channel>,
    /// This caller's certificate or token (a proxy's, with its `frontend` role).
    dialer: Dialer,
    /// Writes go to each node on one stream of its own, over its channel.
    forwarders: Vec<Forwarder>,
    /// Index of the node believed to lead.
    leader: AtomicUsize,
    proxy_id: String,
    caller: String,
    next_seq: AtomicU64,
    /// Where forwarded calls and their retries are counted, when metrics are on.
    metrics: Option<Arc<ClientMetrics>>,
}

/// A job id as the wire's int64: ids past i64::MAX cannot exist, so they are not found.
pub(super) fn wire_id(id: u64) -> Result<i64, UpstreamError> {
    i64::try_from(id).map_err(|_| UpstreamError::Fsm(FsmError::NotFound))
}

/// The job a write names, if it names one.
fn job_of(op: &Op) -> Option<u64> {
    match op {
        Op::ReserveJob { id, .. }
        | Op::Delete { id, .. }
        | Op::Release { id, .. }
        | Op::Bury { id, .. }
        | Op::Touch { id, .. }
        | Op::KickJob { id }
        | Op::MoveJob { id, .. } => Some(*id),
        _ => None,
    }
}

impl RemoteUpstream {
    /// A caller of the cluster at `addrs` (HOST:PORT of each node's gRPC port).
    pub fn new(addrs: Vec<String>, proxy_id: String) -> Result<Arc<Self>, String> {
        Self::with_metrics(addrs, proxy_id, None)
    }

    /// As `new`, counting forwarded calls into `metrics` if given.
    pub fn with_metrics(addrs: Vec<String>, proxy_id: String, metrics: Option<Arc<ClientMetrics>>) -> Result<Arc<Self>, String> {
        Self::dialing(addrs, proxy_id, metrics, Dialer::default())
    }

    /// As `with_metrics`, dialing the nodes with `dialer`'s credentials.
    pub fn dialing(addrs: Vec<String>, proxy_id: String, metrics: Option<Arc<ClientMetrics>>, dialer: Dialer) -> Result<Arc<Self>, String> {
        if addrs.is_empty() {
            return Err("no upstream address".into());
        }
        let mut channels = Vec::with_capacity(addrs.len());
        for addr in &addrs {
            let endpoint = dialer.endpoint(addr)?.connect_timeout(CONNECT_TIMEOUT).timeout(CALL_TIMEOUT);
            channels.push(dialer.connect_lazy(&endpoint));
        }
        let caller = format!("{proxy_id}@{}", crate::clock::now_ms());
        let opened = metrics.as_ref().map(|m| m.streams_opened());
        let forwarders = channels.iter().map(|channel| Forwarder::new(dialer.forwarding(channel.clone()), opened.clone())).collect();
        Ok(Arc::new(RemoteUpstream {
            addrs,
            channels,
            dialer,
            forwarders,
            leader: AtomicUsize::new(0),
            proxy_id,
            caller,
            next_seq: AtomicU64::new(1),
            metrics,
        }))
    }

    pub(super) fn client(&self, index: usize) -> JobsApi {
        self.dialer.jobs(self.channels[index].clone()).max_decoding_message_size(CLIENT_API_ANSWER_BYTES_MAX)
    }

    /// Where to go after a failed attempt at node `tried`.
    fn redirect(&self, tried: usize, status: &Status) {
        let hinted = match leader_hint(status) {
            (_, Some(addr)) => self.addrs.iter().position(|a| *a == addr),
            _ => None,
        };
        let next = hinted.unwrap_or((tried + 1) % self.addrs.len());
        let moved = self.leader.compare_exchange(tried, next, Ordering::Relaxed, Ordering::Relaxed).is_ok();
        if moved && next != tried {
            mutant::note_leader_change();
        }
    }

    /// Applies a write once: forwards it on the leader's stream, with this caller's id and a
    /// sequence number so that a retry applies once.
    pub async fn write(&self, op: Op) -> Result<Reply, UpstreamError> {
        let caller = self.caller_for(&op);
        self.write_as(op, caller).await
    }

    /// The caller's own id: its clients are (proxy id, client id).
    pub fn proxy_id(&self) -> &str {
        &self.proxy_id
    }

    /// The caller id and a fresh sequence number for a write, so that a retry applies once
    /// (a client's goodbye needs none: it applies alike any number of times).
    pub(crate) fn caller_for(&self, op: &Op) -> Option<CallerSeq> {
        match op {
            Op::ClientGone { .. } => None,
            _ => Some(CallerSeq { caller: self.caller.clone(), seq: self.next_seq.fetch_add(1, Ordering::Relaxed) }),
        }
    }

    /// Forwards a write as `caller` on the leader's stream, retrying through leader changes.
    pub(crate) async fn write_as(&self, op: Op, caller: Option<CallerSeq>) -> Result<Reply, UpstreamError> {
        if matches!(op, Op::Tick | Op::NewLeader) {
            return Err(UpstreamError::Unavailable("ticks and leader changes are the leader's to propose".into()));
        }
        if job_of(&op).is_some_and(|id| wire_id(id).is_err()) {
            return Err(UpstreamError::Fsm(FsmError::NotFound));
        }
        let (caller, seq) = caller.map(|c| (c.caller, c.seq)).unwrap_or_default();
        let request = op_request(&op, caller, seq);
        let kind = request.op();
        self.count(Call::Write);
        let response = self.retry_on_leader(|index| self.forwarders[index].write(request.clone())).await?;
        match decode_result(kind, &response) {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(UpstreamError::Fsm(e)),
            Err(e) => Err(UpstreamError::Unavailable(format!("the cluster's answer to {kind:?} does not decode: {}", e.0))),
        }
    }

    /// Runs `call` on the leader until it answers, the state machine refuses, or the patience
    /// runs out. `caller` is set on writes.
    pub(super) async fn on_leader<T, R, F, Fut>(&self, request: T, caller: Option<CallerSeq>, call: F) -> Result<R, UpstreamError>
    where
        T: Clone,
        F: Fn(JobsApi, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        self.count(Call::Read);
        self.retry_on_leader(|index| {
            let mut req = Request::new(request.clone());
            if let Some(c) = &caller {
                set_caller(&mut req, c);
            }
            let answer = call(self.client(index), req);
            async move { answer.await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// Runs a call of the Browse service (a web console's reads) where the other reads go,
    /// retrying as they do.
    pub async fn browse<R, F, Fut>(&self, call: F) -> Result<R, UpstreamError>
    where
        F: Fn(crate::security::dial::BrowseApi) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        self.count(Call::Read);
        self.retry_on_leader(|index| {
            let client = self.dialer.browse(self.channels[index].clone()).max_decoding_message_size(CLIENT_API_ANSWER_BYTES_MAX);
            let answer = call(client);
            async move { answer.await.map(tonic::Response::into_inner) }
        })
        .await
    }

    /// The leader and term as the first node to answer `Cluster.Status` knows them, over the
    /// connections already open (one call, where `cluster-client status` asks every member).
    pub async fn leader_and_term(&self) -> Option<(u64, u64)> {
        for channel in &self.channels {
            let mut client = self.dialer.cluster(channel.clone());
            if let Ok(Ok(status)) = tokio::time::timeout(STATUS_TIMEOUT, client.status(api::Empty {})).await {
                let status = status.into_inner();
                return Some((status.leader_id, status.term));
            }
        }
        None
    }

    /// A job with its stats, or none (GetJob, on the leader).
    pub async fn job_view(&self, id: crate::fsm::JobId) -> Result<Option<crate::fsm::JobView>, UpstreamError> {
        let m = api::GetJobRequest { job_id: wire_id(id)? };
        let answer = self.on_leader(m, None, |mut c, r| async move { c.get_job(r).await }).await?;
        let view = answer.job.as_ref().map(crate::fsm::job_view_from_proto).transpose();
        view.map_err(|e| UpstreamError::Unavailable(format!("the cluster's job {id} does not decode: {e}")))
    }

    /// The credentials this caller dials the nodes with.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// The nodes' addresses, as given.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// Runs `call` with the index of the node believed to lead until it answers, the state
    /// machine refuses, or the patience runs out; a refusal that names another leader, or
    /// none, moves on.
    async fn retry_on_leader<R, F, Fut>(&self, call: F) -> Result<R, UpstreamError>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<R, Status>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut backoff = BACKOFF_MIN;
        loop {
            let index = self.leader.load(Ordering::Relaxed);
            let status = match call(index).await {
                Ok(answer) => return Ok(answer),
                Err(status) => status,
            };
            // Before the state machine's: both are FailedPrecondition.
            if needs_version(&status).is_some() {
                return Err(UpstreamError::NotUpgraded(status.message().to_string()));
            }
            // A node older than this proxy, without the call (the typed stats, say).
            if status.code() == Code::Unimplemented {
                return Err(UpstreamError::NotUpgraded(format!("{}: {}", self.addrs[index], status.message())));
            }
            if let Some(e) = fsm_error(&status) {
                return Err(UpstreamError::Fsm(e));
            }
            // A proxy outside its role stays so whichever node it asks.
            if matches!(status.code(), Code::Aborted | Code::Internal | Code::PermissionDenied) {
                return Err(UpstreamError::Unavailable(status.message().to_string()));
            }
            self.redirect(index, &status);
            if tokio::time::Instant::now() + backoff >= deadline {
                return Err(UpstreamError::Unavailable(format!("{}: {}", self.addrs[index], status.message())));
            }
            // A hint to a new leader is worth trying at once; anything else waits a little.
            if !is_not_leader(&status) || leader_hint(&status).1.is_none() {
                tokio::time::sleep(backoff).await;
                backoff = next_backoff(backoff);
            }
            if let Some(metrics) = &self.metrics {
                metrics.retried();
            }
        }
    }

    fn count(&self, call: Call) {
        if let Some(metrics) = &self.metrics {
            metrics.forwarded(call);
        }
    }
}
