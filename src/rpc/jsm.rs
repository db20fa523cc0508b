//! The `JobStateMachine` service: writes proposed through the node, reads served after a
//! ReadIndex barrier, reservation results streamed per proxy.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::status::{caller_of, invalid, read_refused, status_of};
use crate::api::job_state_machine_server::JobStateMachine;
use crate::api::stats::{self, ClusterStats};
use crate::api::{self, Empty};
use crate::codec::wire::reservation;
use crate::codec::{self, job_id};
use crate::fsm::{job_to_proto, JobStats, JobView, Op, Reply, TubeStats};
use crate::limits::RESERVATION_STREAM_BUFFERED_MAX;
use crate::node::{NodeError, NodeHandle};
use crate::protocol::{job_stats_yaml, stats_yaml, tube_stats_yaml, ServerStats, Stats};

/// How long a write may wait for its entry to apply before the caller is told to retry.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct JobService {
    node: NodeHandle,
    /// Changes when the server begins to shut down: reservation streams end then.
    stopping: tokio::sync::watch::Receiver<()>,
}

impl JobService {
    pub fn new(node: NodeHandle, stopping: tokio::sync::watch::Receiver<()>) -> Self {
        JobService { node, stopping }
    }

    async fn write<T>(&self, request: &Request<T>, op: Op) -> Result<Reply, Status> {
        let caller = caller_of(request.metadata())?;
        match tokio::time::timeout(WRITE_TIMEOUT, self.node.propose(op, caller)).await {
            Ok(result) => result.map_err(status_of),
            Err(_) => Err(Status::unavailable("write not applied in time; retry")),
        }
    }

    async fn read<R>(&self, f: impl FnOnce(&crate::node::replicated::Replicated) -> R) -> Result<R, Status> {
        self.node.read_within(WRITE_TIMEOUT, f).await.map_err(read_refused)
    }

    /// What `stats` says of this node's process, its log included.
    fn server_stats(&self) -> ServerStats {
        let status = self.node.status();
        ServerStats {
            pid: u64::from(std::process::id()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            max_job_size: self.node.job_body_bytes_max() as u64,
            binlog_oldest_index: status.snapshot_index,
            binlog_current_index: status.applied_index,
            id: format!("{:016x}", status.node_id),
            hostname: format!("node-{}", status.node_id),
            os: std::env::consts::OS.to_string(),
            platform: std::env::consts::ARCH.to_string(),
            ..ServerStats::default()
        }
    }

    /// `stats-job` at this node's time; NotFound if there is no such job.
    async fn job_stats(&self, wire_id: i64) -> Result<JobStats, Status> {
        let id = job_id(wire_id).map_err(invalid)?;
        let now = crate::clock::now_ms();
        self.read(|s| s.fsm.stats_job(id, now)).await?.ok_or_else(not_found)
    }

    /// `stats-tube` at this node's time; NotFound if there is no such tube.
    async fn tube_stats(&self, tube: &str) -> Result<TubeStats, Status> {
        let now = crate::clock::now_ms();
        self.read(|s| s.fsm.stats_tube(tube, now)).await?.ok_or_else(not_found)
    }
}

fn not_found() -> Status {
    status_of(NodeError::Fsm(crate::fsm::FsmError::NotFound))
}

fn unexpected(reply: Reply) -> Status {
    Status::internal(format!("unexpected reply {reply:?}"))
}

fn peek(job: Option<JobView>) -> api::PeekResponse {
    api::PeekResponse { job: job.as_ref().map(job_to_proto) }
}

/// A write request as its operation, or InvalidArgument: refused here, before the log, by the
/// same code that decodes the log (codec/ops.rs, for either format), so nothing reaches the
/// log that every replica would then refuse as malformed.
fn edge<'a, M>(request: &'a M) -> Result<Op, Status>
where
    Op: TryFrom<&'a M, Error = codec::DecodeError>,
{
    Op::try_from(request).map_err(invalid)
}

type ReserveStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<api::ReserveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl JobStateMachine for JobService {
    async fn put(&self, request: Request<api::PutRequest>) -> Result<Response<api::PutResponse>, Status> {
        let op = edge(request.get_ref())?;
        match self.write(&request, op).await? {
            Reply::Put { id } => Ok(Response::new(api::PutResponse { job_id: id as i64 })),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(&self, request: Request<api::DeleteRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn reserve(&self, request: Request<api::ReserveRequest>) -> Result<Response<api::ReserveResponse>, Status> {
        let m = request.get_ref().clone();
        let op = edge(&m)?;
        let outcome = match self.write(&request, op).await? {
            Reply::Reserve(outcome) => outcome,
            other => return Err(unexpected(other)),
        };
        let mut r = reservation(outcome.as_ref());
        r.request_id = m.request_id;
        r.client_id = m.client_id;
        r.proxy_id = m.proxy_id;
        Ok(Response::new(api::ReserveResponse { reservation: Some(r) }))
    }

    type StreamReserveUpdatesStream = ReserveStream;

    async fn stream_reserve_updates(
        &self,
        request: Request<api::ReserveUpdateRequest>,
    ) -> Result<Response<Self::StreamReserveUpdatesStream>, Status> {
        let proxy = request.into_inner().proxy_id;
        let mut events = self.node.subscribe();
        let (tx, rx) = mpsc::channel(RESERVATION_STREAM_BUFFERED_MAX);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    biased;
                    _ = stopping.changed() => return,
                    received = events.recv() => received,
                };
                let batch = match received {
                    Ok(batch) => batch,
                    Err(RecvError::Lagged(missed)) => {
                        let _ = tx.send(Err(Status::data_loss(format!("stream lagged by {missed} entries")))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                };
                for e in batch.events.iter().filter(|e| *e.client.proxy == *proxy) {
                    let mut r = reservation(Some(&e.outcome));
                    r.request_id = e.request_id.clone();
                    r.client_id = e.client.client.to_string();
                    r.proxy_id = proxy.clone();
                    if tx.send(Ok(api::ReserveResponse { reservation: Some(r) })).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }

    async fn check_client_state(&self, request: Request<api::CheckClientStateRequest>) -> Result<Response<api::CheckClientStateResponse>, Status> {
        let m = request.into_inner();
        let states = self.read(|s| s.fsm.check_client_state(&m.proxy_id, &m.client_ids)).await?;
        Ok(Response::new(api::CheckClientStateResponse {
            proxy_id: m.proxy_id,
            waiting_client_ids: states.waiting,
            not_waiting_client_ids: states.not_waiting,
            missing_client_ids: states.missing,
        }))
    }

    async fn release(&self, request: Request<api::ReleaseRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn touch(&self, request: Request<api::TouchRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn bury(&self, request: Request<api::BuryRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn kick(&self, request: Request<api::KickRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn kick_n(&self, request: Request<api::KickNRequest>) -> Result<Response<api::KickNResponse>, Status> {
        let op = edge(request.get_ref())?;
        match self.write(&request, op).await? {
            Reply::Kicked { count } => Ok(Response::new(api::KickNResponse { jobs_kicked: count as i32 })),
            other => Err(unexpected(other)),
        }
    }

    async fn get_job(&self, request: Request<api::GetJobRequest>) -> Result<Response<api::GetJobResponse>, Status> {
        let id = job_id(request.get_ref().job_id).map_err(invalid)?;
        let job = self.read(|s| s.fsm.job(id)).await?;
        Ok(Response::new(api::GetJobResponse { job: job.as_ref().map(job_to_proto) }))
    }

    async fn peek_buried(&self, request: Request<api::PeekRequest>) -> Result<Response<api::PeekResponse>, Status> {
        let tube = request.into_inner().tube_name;
        Ok(Response::new(peek(self.read(|s| s.fsm.peek_buried(&tube)).await?)))
    }

    async fn peek_delayed(&self, request: Request<api::PeekRequest>) -> Result<Response<api::PeekResponse>, Status> {
        let tube = request.into_inner().tube_name;
        Ok(Response::new(peek(self.read(|s| s.fsm.peek_delayed(&tube)).await?)))
    }

    async fn peek_ready(&self, request: Request<api::PeekRequest>) -> Result<Response<api::PeekResponse>, Status> {
        let tube = request.into_inner().tube_name;
        Ok(Response::new(peek(self.read(|s| s.fsm.peek_ready(&tube)).await?)))
    }

    async fn get_stats_job_yaml(&self, request: Request<api::GetStatsJobYamlRequest>) -> Result<Response<api::GetStatsJobYamlResponse>, Status> {
        let yaml = job_stats_yaml(&self.job_stats(request.get_ref().job_id).await?);
        Ok(Response::new(api::GetStatsJobYamlResponse { stats_yaml: Bytes::from(yaml) }))
    }

    async fn get_stats_tube_yaml(&self, request: Request<api::GetStatsTubeYamlRequest>) -> Result<Response<api::GetStatsTubeYamlResponse>, Status> {
        let yaml = tube_stats_yaml(&self.tube_stats(&request.get_ref().tube_name).await?);
        Ok(Response::new(api::GetStatsTubeYamlResponse { stats_yaml: Bytes::from(yaml) }))
    }

    async fn get_stats_yaml(&self, _request: Request<Empty>) -> Result<Response<api::GetStatsYamlResponse>, Status> {
        let server = self.server_stats();
        let machine = self.read(|s| s.fsm.stats()).await?;
        let yaml = stats_yaml(&Stats { machine, server });
        Ok(Response::new(api::GetStatsYamlResponse { stats_yaml: Bytes::from(yaml) }))
    }

    async fn get_stats_job(&self, request: Request<api::GetStatsJobYamlRequest>) -> Result<Response<api::JobStatsProto>, Status> {
        let job = self.job_stats(request.get_ref().job_id).await?;
        Ok(Response::new(stats::job_stats_to_proto(&job)))
    }

    async fn get_stats_tube(&self, request: Request<api::GetStatsTubeYamlRequest>) -> Result<Response<api::TubeStatsProto>, Status> {
        let tube = self.tube_stats(&request.get_ref().tube_name).await?;
        Ok(Response::new(stats::tube_stats_to_proto(&tube)))
    }

    async fn get_stats(&self, _request: Request<Empty>) -> Result<Response<api::GetStatsResponse>, Status> {
        let server = self.server_stats();
        let machine = self.read(|s| s.fsm.stats()).await?;
        let (log_oldest_index, log_current_index) = (server.binlog_oldest_index, server.binlog_current_index);
        Ok(Response::new(stats::cluster_stats_to_proto(&ClusterStats { machine, log_oldest_index, log_current_index })))
    }

    async fn list_tubes(&self, _request: Request<Empty>) -> Result<Response<api::ListTubesResponse>, Status> {
        let tubes = self.read(|s| s.fsm.list_tubes()).await?;
        Ok(Response::new(api::ListTubesResponse { tubes }))
    }

    async fn reserve_job(&self, request: Request<api::ReserveJobRequest>) -> Result<Response<api::ReserveResponse>, Status> {
        let m = request.get_ref().clone();
        let op = edge(&m)?;
        match self.write(&request, op).await? {
            Reply::ReservedJob { id, body } => {
                let mut r = reservation(Some(&crate::fsm::ReserveOutcome::Reserved { id, body }));
                r.client_id = m.client_id;
                r.proxy_id = m.proxy_id;
                Ok(Response::new(api::ReserveResponse { reservation: Some(r) }))
            }
            other => Err(unexpected(other)),
        }
    }

    async fn pause_tube(&self, request: Request<api::PauseTubeRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn use_tube(&self, request: Request<api::UseTubeRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn watch_tube(&self, request: Request<api::WatchTubeRequest>) -> Result<Response<api::WatchTubeResponse>, Status> {
        let op = edge(request.get_ref())?;
        match self.write(&request, op).await? {
            Reply::Watching { count } => Ok(Response::new(api::WatchTubeResponse { watching_count: count })),
            other => Err(unexpected(other)),
        }
    }

    async fn ignore_tube(&self, request: Request<api::IgnoreTubeRequest>) -> Result<Response<api::WatchTubeResponse>, Status> {
        let op = edge(request.get_ref())?;
        match self.write(&request, op).await? {
            Reply::Watching { count } => Ok(Response::new(api::WatchTubeResponse { watching_count: count })),
            other => Err(unexpected(other)),
        }
    }

    async fn client_hello(&self, request: Request<api::ClientHelloRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn discard_put(&self, request: Request<api::DiscardPutRequest>) -> Result<Response<Empty>, Status> {
        let op = edge(request.get_ref())?;
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn client_gone(&self, request: Request<api::ClientGoneRequest>) -> Result<Response<Empty>, Status> {
        // One entry per client, without a caller sequence: ending a session twice is harmless.
        // Every client is checked before any is written.
        for op in codec::wire::clients_gone(request.get_ref()).map_err(invalid)? {
            let result = tokio::time::timeout(WRITE_TIMEOUT, self.node.propose(op, None)).await;
            result.map_err(|_| Status::unavailable("write not applied in time; retry"))?.map_err(status_of)?;
        }
        Ok(Response::new(Empty {}))
    }

    async fn proxy_gone(&self, request: Request<api::ProxyGoneRequest>) -> Result<Response<Empty>, Status> {
        let op = Op::ProxyGone { proxy: request.get_ref().proxy_id.clone() };
        self.write(&request, op).await.map(|_| Response::new(Empty {}))
    }

    async fn proxy_lease(&self, request: Request<api::ProxyLeaseRequest>) -> Result<Response<api::ProxyLeaseResponse>, Status> {
        let op = edge(request.get_ref())?;
        let lease_was_live = matches!(self.write(&request, op).await?, Reply::Lease { was_live: true });
        Ok(Response::new(api::ProxyLeaseResponse { lease_was_live }))
    }
}
