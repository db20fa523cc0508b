//! The reads a caller asks of the cluster (`Query`) and their answers (`Answer`), and how
//! `RemoteUpstream` asks them over gRPC: each on the leader, a linearizable read.

use super::remote::wire_id;
use super::{RemoteUpstream, UpstreamError};
use crate::api;
use crate::api::stats::{cluster_stats_from_proto, job_stats_from_proto, tube_stats_from_proto, ClusterStats};
use crate::fsm::{FsmError, JobId, JobStats, TubeStats};

/// A read asked of the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    Job(JobId),
    PeekReady(String),
    PeekDelayed(String),
    PeekBuried(String),
    StatsJob(JobId),
    StatsTube(String),
    /// The cluster's part of `stats` (the proxy adds its own).
    Stats,
    ListTubes,
    /// Which of these clients of this proxy do not wait for a reservation (or have no
    /// session at all).
    NotWaiting(Vec<String>),
}

/// The answer to a `Query`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A job's id and body, or none.
    Job(Option<(JobId, bytes::Bytes)>),
    /// A job's stats, or none (no such job).
    JobStats(Option<JobStats>),
    /// A tube's stats, or none (no such tube).
    TubeStats(Option<TubeStats>),
    Stats(Box<ClusterStats>),
    Tubes(Vec<String>),
    Clients(Vec<String>),
}

/// A stats call's answer, or none when its job or tube does not exist.
fn found<T>(answer: Result<T, UpstreamError>) -> Result<Option<T>, UpstreamError> {
    match answer {
        Ok(answer) => Ok(Some(answer)),
        Err(UpstreamError::Fsm(FsmError::NotFound)) => Ok(None),
        Err(e) => Err(e),
    }
}

impl RemoteUpstream {
    /// A linearizable read, on the leader.
    pub async fn query(&self, query: Query) -> Result<Answer, UpstreamError> {
        let job = |r: Option<api::JobProto>| Answer::Job(r.map(|j| (j.id as u64, j.body)));
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
                let r = found(self.on_leader(m, None, |mut c, r| async move { c.get_stats_job(r).await }).await)?;
                let stats = r.as_ref().map(job_stats_from_proto).transpose();
                stats.map(Answer::JobStats).map_err(|e| UpstreamError::Unavailable(format!("the cluster's stats-job does not decode: {e}")))
            }
            Query::StatsTube(tube_name) => {
                let m = api::GetStatsTubeYamlRequest { tube_name };
                let r = found(self.on_leader(m, None, |mut c, r| async move { c.get_stats_tube(r).await }).await)?;
                Ok(Answer::TubeStats(r.as_ref().map(tube_stats_from_proto)))
            }
            Query::Stats => {
                let r = self.on_leader(api::Empty {}, None, |mut c, r| async move { c.get_stats(r).await }).await?;
                Ok(Answer::Stats(Box::new(cluster_stats_from_proto(&r))))
            }
            Query::NotWaiting(client_ids) => {
                let m = api::CheckClientStateRequest { proxy_id: self.proxy_id().to_string(), client_ids };
                let r = self.on_leader(m, None, |mut c, r| async move { c.check_client_state(r).await }).await?;
                Ok(Answer::Clients(r.not_waiting_client_ids.into_iter().chain(r.missing_client_ids).collect()))
            }
            Query::ListTubes => {
                let r = self.on_leader(api::Empty {}, None, |mut c, r| async move { c.list_tubes(r).await }).await?;
                Ok(Answer::Tubes(r.tubes))
            }
        }
    }
}
