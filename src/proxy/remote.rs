//! The upstream over gRPC: a cluster reached at a list of node addresses. Writes go to the
//! leader (found from NotLeader hints, else by trying each node), carry this front end's
//! caller id and a sequence number so a retry applies once, and are retried through leader
//! changes for up to the patience. Reservation results stream from every node at once.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

use super::upstream::{next_backoff, Answer, Query, Upstream, UpstreamError, PATIENCE};
use crate::api::job_state_machine_client::JobStateMachineClient;
use crate::api::{self, ReservationStatus};
use crate::fsm::{add_to_yaml_count, front_end_fields, patch_yaml, ClientKey, FsmError, Op, Reply, ReservationEvent, ReserveOutcome};
use crate::chaos::mutant;
use crate::node::CallerSeq;
use crate::rpc::status::{is_not_leader, leader_hint, set_caller};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A call's own limit; a reserve's wait is not a call (results come on the stream).
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_START: Duration = Duration::from_millis(20);

/// The cluster over gRPC.
pub struct RemoteUpstream {
    addrs: Vec<String>,
    /// One lazily connected channel per node (tonic multiplexes calls on it).
    channels: Vec<Channel>,
    /// Index of the node believed to lead.
    leader: AtomicUsize,
    proxy_id: String,
    caller: String,
    next_seq: AtomicU64,
}

fn fsm_error(status: &Status) -> Option<FsmError> {
    match status.code() {
        Code::NotFound => Some(FsmError::NotFound),
        Code::FailedPrecondition if !is_not_leader(status) => Some(FsmError::WrongState),
        Code::PermissionDenied => Some(FsmError::NotYours),
        Code::OutOfRange => Some(FsmError::LastWatchedTube),
        Code::InvalidArgument => Some(FsmError::BadArgument("refused by the cluster")),
        _ => None,
    }
}

/// A job id as the wire's int64: ids past i64::MAX cannot exist, so they are not found.
fn wire_id(id: u64) -> Result<i64, UpstreamError> {
    i64::try_from(id).map_err(|_| UpstreamError::Fsm(FsmError::NotFound))
}

fn outcome(r: Option<api::Reservation>) -> Option<ReserveOutcome> {
    let r = r?;
    match r.status() {
        ReservationStatus::Matched => Some(ReserveOutcome::Reserved { id: r.job_id as u64, body: r.body }),
        ReservationStatus::Timeout => Some(ReserveOutcome::TimedOut),
        ReservationStatus::DeadlineSoon => Some(ReserveOutcome::DeadlineSoon),
        _ => None,
    }
}

impl RemoteUpstream {
    /// A front end before the cluster at `addrs` (HOST:PORT of each node's gRPC port).
    pub fn new(addrs: Vec<String>, proxy_id: String) -> Result<Arc<Self>, String> {
        if addrs.is_empty() {
            return Err("no upstream address".into());
        }
        let mut channels = Vec::with_capacity(addrs.len());
        for addr in &addrs {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| format!("bad upstream address {addr:?}: {e}"))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(CALL_TIMEOUT);
            channels.push(endpoint.connect_lazy());
        }
        let caller = format!("{proxy_id}@{}", crate::node::clock::now_ms());
        Ok(Arc::new(RemoteUpstream {
            addrs,
            channels,
            leader: AtomicUsize::new(0),
            proxy_id,
            caller,
            next_seq: AtomicU64::new(1),
        }))
    }

    fn client(&self, index: usize) -> JobStateMachineClient<Channel> {
        JobStateMachineClient::new(self.channels[index].clone())
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

    /// Runs `call` on the leader until it answers, the state machine refuses, or the patience
    /// runs out. `caller` is set on writes.
    async fn on_leader<T, R, F, Fut>(&self, request: T, caller: Option<CallerSeq>, call: F) -> Result<R, UpstreamError>
    where
        T: Clone,
        F: Fn(JobStateMachineClient<Channel>, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut backoff = BACKOFF_START;
        loop {
            let index = self.leader.load(Ordering::Relaxed);
            let mut req = Request::new(request.clone());
            if let Some(c) = &caller {
                set_caller(&mut req, c);
            }
            let status = match call(self.client(index), req).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            if let Some(e) = fsm_error(&status) {
                return Err(UpstreamError::Fsm(e));
            }
            if status.code() == Code::Aborted || status.code() == Code::Internal {
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
        }
    }

    fn split(c: &ClientKey) -> (String, String) {
        (c.proxy.to_string(), c.client.to_string())
    }
}

#[tonic::async_trait]
impl Upstream for RemoteUpstream {
    async fn write(&self, op: Op) -> Result<Reply, UpstreamError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let caller = Some(CallerSeq { caller: self.caller.clone(), seq });
        let done = |_: api::Empty| Reply::Done;
        match op {
            Op::Put { client, tube, pri, delay_secs, ttr_secs, body } => {
                let (proxy_id, client_id) = client.as_ref().map(Self::split).unwrap_or_default();
                let m = api::PutRequest {
                    priority: pri,
                    delay: i64::from(delay_secs),
                    ttr: ttr_secs as i32,
                    tube_name: tube,
                    body_size: body.len() as i32,
                    body,
                    proxy_id,
                    client_id,
                };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.put(r).await }).await?;
                Ok(Reply::Put { id: r.job_id as u64 })
            }
            Op::Reserve { client, request_id, timeout_secs, tubes } => {
                let (proxy_id, client_id) = Self::split(&client);
                let timeout_secs = timeout_secs.map_or(-1, |t| t.min(i32::MAX as u32) as i32);
                let m = api::ReserveRequest { client_id, request_id, timeout_secs, watched_tubes: tubes, proxy_id };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.reserve(r).await }).await?;
                Ok(Reply::Reserve(outcome(r.reservation)))
            }
            Op::ReserveJob { client, id } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::ReserveJobRequest { job_id: wire_id(id)?, client_id, proxy_id };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.reserve_job(r).await }).await?;
                match outcome(r.reservation) {
                    Some(ReserveOutcome::Reserved { id, body }) => Ok(Reply::ReservedJob { id, body }),
                    other => Err(UpstreamError::Unavailable(format!("reserve-job answered {other:?}"))),
                }
            }
            Op::Delete { client, id } => {
                let (proxy_id, client_id) = client.as_ref().map(Self::split).unwrap_or_default();
                let m = api::DeleteRequest { job_id: wire_id(id)?, proxy_id, client_id };
                self.on_leader(m, caller, |mut c, r| async move { c.delete(r).await }).await.map(done)
            }
            Op::Release { client, id, pri, delay_secs } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::ReleaseRequest { job_id: wire_id(id)?, client_id, proxy_id, delay: i64::from(delay_secs), priority: pri };
                self.on_leader(m, caller, |mut c, r| async move { c.release(r).await }).await.map(done)
            }
            Op::Bury { client, id, pri } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::BuryRequest { job_id: wire_id(id)?, priority: pri, client_id, proxy_id };
                self.on_leader(m, caller, |mut c, r| async move { c.bury(r).await }).await.map(done)
            }
            Op::Touch { client, id } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::TouchRequest { job_id: wire_id(id)?, client_id, proxy_id };
                self.on_leader(m, caller, |mut c, r| async move { c.touch(r).await }).await.map(done)
            }
            Op::Kick { tube, bound } => {
                let m = api::KickNRequest { tube_name: tube, bound: bound.min(i32::MAX as u32) as i32 };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.kick_n(r).await }).await?;
                Ok(Reply::Kicked { count: r.jobs_kicked.max(0) as u32 })
            }
            Op::KickJob { id } => {
                let m = api::KickRequest { job_id: wire_id(id)? };
                self.on_leader(m, caller, |mut c, r| async move { c.kick(r).await }).await.map(done)
            }
            Op::PauseTube { tube, delay_secs } => {
                let m = api::PauseTubeRequest { tube_name: tube, delay: i64::from(delay_secs) };
                self.on_leader(m, caller, |mut c, r| async move { c.pause_tube(r).await }).await.map(done)
            }
            Op::Use { client, tube } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::UseTubeRequest { tube_name: tube, client_id, proxy_id };
                self.on_leader(m, caller, |mut c, r| async move { c.use_tube(r).await }).await.map(done)
            }
            Op::Watch { client, tube } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::WatchTubeRequest { tube_name: tube, client_id, proxy_id };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.watch_tube(r).await }).await?;
                Ok(Reply::Watching { count: r.watching_count })
            }
            Op::Ignore { client, tube } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::IgnoreTubeRequest { tube_name: tube, client_id, proxy_id };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.ignore_tube(r).await }).await?;
                Ok(Reply::Watching { count: r.watching_count })
            }
            Op::ClientHello { client } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::ClientHelloRequest { proxy_id, client_id };
                self.on_leader(m, caller, |mut c, r| async move { c.client_hello(r).await }).await.map(done)
            }
            Op::DiscardPut { client } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::DiscardPutRequest { proxy_id, client_id };
                self.on_leader(m, caller, |mut c, r| async move { c.discard_put(r).await }).await.map(done)
            }
            Op::ClientGone { client } => {
                let (proxy_id, client_id) = Self::split(&client);
                let m = api::ClientGoneRequest { proxy_id, client_ids: vec![client_id] };
                self.on_leader(m, None, |mut c, r| async move { c.client_gone(r).await }).await.map(done)
            }
            Op::ProxyGone { proxy } => {
                let m = api::ProxyGoneRequest { proxy_id: proxy };
                self.on_leader(m, caller, |mut c, r| async move { c.proxy_gone(r).await }).await.map(done)
            }
            Op::ProxyLease { proxy, lease_secs } => {
                let m = api::ProxyLeaseRequest { proxy_id: proxy, lease_secs };
                let r = self.on_leader(m, caller, |mut c, r| async move { c.proxy_lease(r).await }).await?;
                Ok(Reply::Lease { was_live: r.lease_was_live })
            }
            Op::Tick | Op::NewLeader => Err(UpstreamError::Unavailable("ticks and leader changes are the leader's to propose".into())),
        }
    }

    async fn query(&self, query: Query) -> Result<Answer, UpstreamError> {
        let job = |r: Option<api::JobProto>| Answer::Job(r.map(|j| (j.id as u64, j.body)));
        let missing_is_none = |r: Result<Answer, UpstreamError>| match r {
            Err(UpstreamError::Fsm(FsmError::NotFound)) => Ok(Answer::Yaml(None)),
            other => other,
        };
        let yaml = |bytes: bytes::Bytes| Answer::Yaml(Some(String::from_utf8_lossy(&bytes).into_owned()));
        match query {
            Query::Job(id) => {
                let m = api::GetJobRequest { job_id: wire_id(id)? };
                self.on_leader(m, None, |mut c, r| async move { c.get_job(r).await }).await.map(|r| job(r.job))
            }
            Query::PeekReady(tube_name) => {
                let m = api::PeekRequest { tube_name };
                self.on_leader(m, None, |mut c, r| async move { c.peek_ready(r).await }).await.map(|r| job(r.job))
            }
            Query::PeekDelayed(tube_name) => {
                let m = api::PeekRequest { tube_name };
                self.on_leader(m, None, |mut c, r| async move { c.peek_delayed(r).await }).await.map(|r| job(r.job))
            }
            Query::PeekBuried(tube_name) => {
                let m = api::PeekRequest { tube_name };
                self.on_leader(m, None, |mut c, r| async move { c.peek_buried(r).await }).await.map(|r| job(r.job))
            }
            Query::StatsJob(id) => {
                let m = api::GetStatsJobYamlRequest { job_id: wire_id(id)? };
                let r = self.on_leader(m, None, |mut c, r| async move { c.get_stats_job_yaml(r).await }).await;
                missing_is_none(r.map(|r| yaml(r.stats_yaml)))
            }
            Query::StatsTube(tube_name) => {
                let m = api::GetStatsTubeYamlRequest { tube_name };
                let r = self.on_leader(m, None, |mut c, r| async move { c.get_stats_tube_yaml(r).await }).await;
                missing_is_none(r.map(|r| yaml(r.stats_yaml)))
            }
            Query::Stats(server) => {
                let r = self.on_leader(api::Empty {}, None, |mut c, r| async move { c.get_stats_yaml(r).await }).await?;
                let cluster = String::from_utf8_lossy(&r.stats_yaml).into_owned();
                let patched = patch_yaml(&cluster, &front_end_fields(&server));
                Ok(Answer::Yaml(Some(add_to_yaml_count(&patched, "cmd-put", server.cmd_put_unlogged))))
            }
            Query::NotWaiting(client_ids) => {
                let m = api::CheckClientStateRequest { proxy_id: self.proxy_id.clone(), client_ids };
                let r = self.on_leader(m, None, |mut c, r| async move { c.check_client_state(r).await }).await?;
                Ok(Answer::Clients(r.not_waiting_client_ids.into_iter().chain(r.missing_client_ids).collect()))
            }
            Query::ListTubes => {
                let r = self.on_leader(api::Empty {}, None, |mut c, r| async move { c.list_tubes(r).await }).await?;
                Ok(Answer::Tubes(r.tubes))
            }
        }
    }

    fn reservations(&self) -> mpsc::Receiver<ReservationEvent> {
        let (tx, rx) = mpsc::channel(4096);
        for index in 0..self.channels.len() {
            let client = self.client(index);
            let (tx, proxy) = (tx.clone(), self.proxy_id.clone());
            tokio::spawn(stream_from(client, proxy, tx));
        }
        rx
    }

    fn proxy_id(&self) -> &str {
        &self.proxy_id
    }
}

/// Forwards one node's stream of this front end's reservation results, reconnecting with
/// backoff whenever it breaks, until the receiver is gone.
async fn stream_from(mut client: JobStateMachineClient<Channel>, proxy_id: String, tx: mpsc::Sender<ReservationEvent>) {
    let mut backoff = BACKOFF_START;
    while !tx.is_closed() {
        let request = api::ReserveUpdateRequest { proxy_id: proxy_id.clone() };
        if let Ok(response) = client.stream_reserve_updates(request).await {
            let mut stream = response.into_inner();
            backoff = BACKOFF_START;
            while let Ok(Some(update)) = stream.message().await {
                let Some(r) = update.reservation.clone() else { continue };
                let (client_id, request_id) = (r.client_id.clone(), r.request_id.clone());
                let Some(outcome) = outcome(Some(r)) else { continue };
                let event = ReservationEvent { client: ClientKey::new(&proxy_id, &client_id), request_id, outcome };
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = next_backoff(backoff);
    }
}
