//! A small job client over the gRPC API, for the simulator's clients, the loopback tests and
//! put-bench: the cluster over gRPC as a proxy reaches it (leader-following, retries that apply once)
//! with the few calls they need.

use std::net::SocketAddr;
use std::sync::Arc;

use tonic::Status;

use super::{Answer, Query, RemoteUpstream, UpstreamError};
use crate::fsm::{ClientKey, Op, Reply, ReserveOutcome};

/// What a reserve came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    Job(u64),
    TimedOut,
    DeadlineSoon,
    Queued,
}

pub struct JobClient {
    upstream: Arc<RemoteUpstream>,
    /// Clients named in reserves and deletes are (this name, client).
    name: String,
}

fn status(e: UpstreamError) -> Status {
    match e {
        UpstreamError::Fsm(e) => Status::failed_precondition(e.to_string()),
        UpstreamError::Unavailable(why) => Status::unavailable(why),
        UpstreamError::NotUpgraded(why) => Status::failed_precondition(why),
    }
}

impl JobClient {
    /// A client of the cluster at `nodes`; `name` identifies its writes for deduplication.
    pub fn new(name: &str, nodes: Vec<SocketAddr>) -> Self {
        Self::dialing(name, nodes, crate::security::Dialer::default())
    }

    /// As `new`, dialing the nodes with `dialer`'s credentials.
    pub fn dialing(name: &str, nodes: Vec<SocketAddr>, dialer: crate::security::Dialer) -> Self {
        let addrs = nodes.iter().map(SocketAddr::to_string).collect();
        let upstream = RemoteUpstream::dialing(addrs, name.to_string(), None, dialer).expect("at least one valid node address");
        JobClient { upstream, name: name.to_string() }
    }

    fn client(&self, client: &str) -> ClientKey {
        ClientKey::new(&self.name, client)
    }

    /// Puts a job with a TTR of 60 s.
    pub async fn put(&mut self, tube: &str, pri: u32, body: &[u8]) -> Result<u64, Status> {
        self.put_with_ttr(tube, pri, 60, body).await
    }

    pub async fn put_with_ttr(&mut self, tube: &str, pri: u32, ttr_secs: u32, body: &[u8]) -> Result<u64, Status> {
        let op = Op::Put { client: None, tube: tube.into(), pri, delay_secs: 0, ttr_secs, body: bytes::Bytes::copy_from_slice(body) };
        match self.upstream.write(op).await.map_err(status)? {
            Reply::Put { id } => Ok(id),
            other => Err(Status::internal(format!("put answered {other:?}"))),
        }
    }

    pub async fn reserve(&mut self, client: &str, request_id: &str, timeout_secs: i32) -> Result<Reserved, Status> {
        let op = Op::Reserve {
            client: self.client(client),
            request_id: request_id.into(),
            timeout_secs: u32::try_from(timeout_secs).ok(),
            tubes: Vec::new(),
        };
        Ok(match self.upstream.write(op).await.map_err(status)? {
            Reply::Reserve(Some(ReserveOutcome::Reserved { id, .. })) => Reserved::Job(id),
            Reply::Reserve(Some(ReserveOutcome::TimedOut)) => Reserved::TimedOut,
            Reply::Reserve(Some(ReserveOutcome::DeadlineSoon)) => Reserved::DeadlineSoon,
            Reply::Reserve(None) => Reserved::Queued,
            other => return Err(Status::internal(format!("reserve answered {other:?}"))),
        })
    }

    pub async fn delete(&mut self, client: &str, id: u64) -> Result<(), Status> {
        self.upstream.write(Op::Delete { client: Some(self.client(client)), id }).await.map(|_| ()).map_err(status)
    }

    /// Whether job `id` exists (a linearizable read).
    pub async fn exists(&mut self, id: u64) -> Result<bool, Status> {
        match self.upstream.query(Query::Job(id)).await.map_err(status)? {
            Answer::Job(job) => Ok(job.is_some()),
            other => Err(Status::internal(format!("get job answered {other:?}"))),
        }
    }
}
