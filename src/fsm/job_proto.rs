// A job as a message of one format, `pb`, and back. snapshot.rs includes it once for the
// published API (peeks, browsing) and once for the disk format (snapshots), whose job
// messages began as the same and keep the same fields.

use super::{bad, ms, secs_u32, RestoreError};
use crate::fsm::{ClientKey, Counters, JobId, JobState, JobView};

/// A job in this format.
pub fn job_to_proto(job: &JobView) -> pb::JobProto {
    let mut p = pb::JobProto {
        id: job.id as i64,
        priority: job.pri,
        delay: i64::from(job.delay_secs),
        ttr: job.ttr_secs as i32,
        tube_name: job.tube.clone(),
        created_at: job.created_ms as i64,
        body_size: job.body.len() as i32,
        body: job.body.clone(),
        reserve_count: job.reserves,
        timeout_count: job.timeouts,
        release_count: job.releases,
        bury_count: job.buries,
        kick_count: job.kicks,
        ..pb::JobProto::default()
    };
    let state = match &job.state {
        JobState::Ready => pb::JobStateProto::Ready,
        JobState::Delayed { until } => {
            p.ready_at = *until as i64;
            pb::JobStateProto::Delayed
        }
        JobState::Reserved { by, deadline } => {
            p.expires_at = *deadline as i64;
            p.reserved_by = by.client.to_string();
            p.reserved_by_proxy = by.proxy.to_string();
            pb::JobStateProto::Reserved
        }
        JobState::Buried { seq } => {
            p.bury_seq = *seq;
            pb::JobStateProto::Buried
        }
    };
    p.set_state(state);
    p
}

/// A job's copy from this format: `job_to_proto` undone.
pub fn job_view_from_proto(p: &pb::JobProto) -> Result<JobView, RestoreError> {
    Ok(JobView {
        id: JobId::try_from(p.id).map_err(|_| bad(format!("job id {} is negative", p.id)))?,
        tube: p.tube_name.clone(),
        pri: p.priority,
        state: job_state_from_proto(p)?,
        delay_secs: secs_u32(p.delay, "delay")?,
        ttr_secs: p.ttr as u32,
        created_ms: ms(p.created_at, "created_at")?,
        body: p.body.clone(),
        reserves: p.reserve_count,
        timeouts: p.timeout_count,
        releases: p.release_count,
        buries: p.bury_count,
        kicks: p.kick_count,
    })
}

fn job_state_from_proto(p: &pb::JobProto) -> Result<JobState, RestoreError> {
    let id = p.id;
    Ok(match p.state() {
        pb::JobStateProto::Ready => JobState::Ready,
        pb::JobStateProto::Delayed => JobState::Delayed { until: ms(p.ready_at, "ready_at")? },
        pb::JobStateProto::Reserved => JobState::Reserved {
            by: ClientKey::new(&p.reserved_by_proxy, &p.reserved_by),
            deadline: ms(p.expires_at, "expires_at")?,
        },
        pb::JobStateProto::Buried => JobState::Buried { seq: p.bury_seq },
        other => return Err(bad(format!("job {id} is in state {other:?}"))),
    })
}

/// The state machine's command counters in this format.
pub fn counters_to_proto(counters: &Counters) -> pb::CountersProto {
    pb::CountersProto {
        cmd_put: counters.cmd_put,
        cmd_reserve: counters.cmd_reserve,
        cmd_reserve_with_timeout: counters.cmd_reserve_with_timeout,
        cmd_delete: counters.cmd_delete,
        cmd_release: counters.cmd_release,
        cmd_use: counters.cmd_use,
        cmd_watch: counters.cmd_watch,
        cmd_ignore: counters.cmd_ignore,
        cmd_bury: counters.cmd_bury,
        cmd_kick: counters.cmd_kick,
        cmd_touch: counters.cmd_touch,
        cmd_pause_tube: counters.cmd_pause_tube,
        job_timeouts: counters.job_timeouts,
        total_jobs: counters.total_jobs,
        cmd_reserve_job: counters.cmd_reserve_job,
    }
}

pub fn counters_from_proto(p: &pb::CountersProto) -> Counters {
    Counters {
        cmd_put: p.cmd_put,
        cmd_reserve: p.cmd_reserve,
        cmd_reserve_with_timeout: p.cmd_reserve_with_timeout,
        cmd_reserve_job: p.cmd_reserve_job,
        cmd_delete: p.cmd_delete,
        cmd_release: p.cmd_release,
        cmd_use: p.cmd_use,
        cmd_watch: p.cmd_watch,
        cmd_ignore: p.cmd_ignore,
        cmd_bury: p.cmd_bury,
        cmd_kick: p.cmd_kick,
        cmd_touch: p.cmd_touch,
        cmd_pause_tube: p.cmd_pause_tube,
        job_timeouts: p.job_timeouts,
        total_jobs: p.total_jobs,
    }
}
