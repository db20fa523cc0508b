//! A job client over the gRPC API that finds the leader, follows redirects, and retries writes
//! with the same caller sequence number, so a retried write applies once. Used by the
//! simulator's clients and the loopback tests.

use std::net::SocketAddr;
use std::time::Duration;

use crate::api::job_state_machine_client::JobStateMachineClient;
use crate::api::{self, ReservationStatus};
use crate::node::CallerSeq;
use crate::rpc::status::{leader_hint, set_caller};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};

/// Attempts at one call before it counts as failed.
const ATTEMPTS_MAX: usize = 40;
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// What a reserve came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reserved {
    Job(u64),
    TimedOut,
    DeadlineSoon,
    Queued,
}

pub struct JobClient {
    name: String,
    nodes: Vec<SocketAddr>,
    /// Index into `nodes` of the node to try first.
    current: usize,
    /// The connection to `nodes[current]`, kept between calls.
    channel: Option<Channel>,
    next_seq: u64,
}

impl JobClient {
    pub fn new(name: &str, nodes: Vec<SocketAddr>) -> Self {
        JobClient { name: name.to_string(), nodes, current: 0, channel: None, next_seq: 1 }
    }

    async fn channel(&mut self) -> Result<Channel, Status> {
        if let Some(channel) = &self.channel {
            return Ok(channel.clone());
        }
        let addr = self.nodes[self.current];
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::internal(e.to_string()))?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.channel = Some(channel.clone());
        Ok(channel)
    }

    /// Moves on to another node: the next one, or `index`.
    fn move_to(&mut self, index: Option<usize>) {
        self.current = index.unwrap_or((self.current + 1) % self.nodes.len());
        self.channel = None;
    }

    /// Runs `call` until a node that can serve it answers, moving to the leader it names or to
    /// the next node. Writes carry the same caller sequence number on every attempt.
    async fn call<T, R, F, Fut>(&mut self, request: T, write: bool, call: F) -> Result<R, Status>
    where
        T: Clone,
        F: Fn(JobStateMachineClient<Channel>, Request<T>) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<R>, Status>>,
    {
        let caller = write.then(|| {
            let seq = self.next_seq;
            self.next_seq += 1;
            CallerSeq { caller: self.name.clone(), seq }
        });
        let mut last = Status::unavailable("no attempt made");
        for _ in 0..ATTEMPTS_MAX {
            let channel = match self.channel().await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    self.move_to(None);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let mut req = Request::new(request.clone());
            if let Some(c) = &caller {
                set_caller(&mut req, c);
            }
            match call(JobStateMachineClient::new(channel), req).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(status) => {
                    let retry = self.on_error(&status);
                    last = status;
                    if !retry {
                        return Err(last);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Err(last)
    }

    /// Moves to where an error points; answers whether the call is worth retrying.
    fn on_error(&mut self, status: &Status) -> bool {
        match status.code() {
            Code::FailedPrecondition => {
                if let (_, Some(addr)) = leader_hint(status) {
                    if let Some(i) = self.nodes.iter().position(|n| n.to_string() == addr) {
                        self.move_to(Some(i));
                        return true;
                    }
                }
                if status.message().contains("not the leader") {
                    self.move_to(None);
                    return true;
                }
                false
            }
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                self.move_to(None);
                true
            }
            _ => false,
        }
    }

    pub async fn put(&mut self, tube: &str, pri: u32, body: &[u8]) -> Result<u64, Status> {
        let request = api::PutRequest {
            priority: pri,
            delay: 0,
            ttr: 60,
            tube_name: tube.into(),
            body_size: body.len() as i32,
            body: bytes::Bytes::copy_from_slice(body),
            proxy_id: String::new(),
            client_id: String::new(),
        };
        let r = self.call(request, true, |mut c, r| async move { c.put(r).await }).await?;
        Ok(r.job_id as u64)
    }

    pub async fn reserve(&mut self, client: &str, request_id: &str, timeout_secs: i32) -> Result<Reserved, Status> {
        let request = api::ReserveRequest {
            client_id: client.into(),
            request_id: request_id.into(),
            timeout_secs,
            watched_tubes: vec![],
            proxy_id: self.name.clone(),
        };
        let r = self.call(request, true, |mut c, r| async move { c.reserve(r).await }).await?;
        let reservation = r.reservation.unwrap_or_default();
        Ok(match reservation.status() {
            ReservationStatus::Matched => Reserved::Job(reservation.job_id as u64),
            ReservationStatus::Timeout => Reserved::TimedOut,
            ReservationStatus::DeadlineSoon => Reserved::DeadlineSoon,
            _ => Reserved::Queued,
        })
    }

    pub async fn delete(&mut self, client: &str, id: u64) -> Result<(), Status> {
        let request = api::DeleteRequest { job_id: id as i64, proxy_id: self.name.clone(), client_id: client.into() };
        self.call(request, true, |mut c, r| async move { c.delete(r).await }).await.map(|_| ())
    }

    /// Whether job `id` exists (a linearizable read).
    pub async fn exists(&mut self, id: u64) -> Result<bool, Status> {
        let request = api::GetJobRequest { job_id: id as i64 };
        let r = self.call(request, false, |mut c, r| async move { c.get_job(r).await }).await?;
        Ok(r.job.is_some())
    }
}
