//! The typed stats on the wire (`GetStatsJob`, `GetStatsTube`, `GetStats`), both ways: a node
//! answers with the state machine's numbers, a proxy before the cluster reads them back
//! and writes the YAML with its own facts in it.

use crate::api::{GetStatsResponse, JobCountsProto, JobStateProto, JobStatsProto, MachineStatsProto, TubeStatsProto};
use crate::fsm::{counters_from_proto, counters_to_proto, BrowseState, JobCounts, JobStats, MachineStats, TubeStats};

/// `stats` as a cluster answers it: the state machine's counts and the log of the node that
/// answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub machine: MachineStats,
    /// The node's snapshot index and last applied index.
    pub log_oldest_index: u64,
    pub log_current_index: u64,
}

fn counts_to_proto(c: &JobCounts) -> JobCountsProto {
    JobCountsProto { urgent: c.urgent, ready: c.ready, reserved: c.reserved, delayed: c.delayed, buried: c.buried }
}

/// Counts a message left unset are all 0.
fn counts_from_proto(p: Option<&JobCountsProto>) -> JobCounts {
    let p = p.copied().unwrap_or_default();
    JobCounts { urgent: p.urgent, ready: p.ready, reserved: p.reserved, delayed: p.delayed, buried: p.buried }
}

pub fn job_stats_to_proto(j: &JobStats) -> JobStatsProto {
    let state = match j.state {
        BrowseState::Ready => JobStateProto::Ready,
        BrowseState::Delayed => JobStateProto::Delayed,
        BrowseState::Reserved => JobStateProto::Reserved,
        BrowseState::Buried => JobStateProto::Buried,
    };
    JobStatsProto {
        // Ids past i64::MAX cannot exist (the wire's job ids are int64 throughout).
        id: j.id as i64,
        tube_name: j.tube.to_string(),
        state: state.into(),
        priority: j.pri,
        age_secs: j.age_secs,
        delay_secs: j.delay_secs,
        ttr_secs: j.ttr_secs,
        time_left_secs: j.time_left_secs,
        reserves: j.reserves,
        timeouts: j.timeouts,
        releases: j.releases,
        buries: j.buries,
        kicks: j.kicks,
    }
}

/// A job's stats from the wire, or why they do not decode (a negative id, a state no job is
/// in).
pub fn job_stats_from_proto(p: &JobStatsProto) -> Result<JobStats, String> {
    let state = match JobStateProto::try_from(p.state) {
        Ok(JobStateProto::Ready) => BrowseState::Ready,
        Ok(JobStateProto::Delayed) => BrowseState::Delayed,
        Ok(JobStateProto::Reserved) => BrowseState::Reserved,
        Ok(JobStateProto::Buried) => BrowseState::Buried,
        _ => return Err(format!("job {} is in state {}", p.id, p.state)),
    };
    Ok(JobStats {
        id: u64::try_from(p.id).map_err(|_| format!("job id {} is negative", p.id))?,
        tube: p.tube_name.as_str().into(),
        state,
        pri: p.priority,
        age_secs: p.age_secs,
        delay_secs: p.delay_secs,
        ttr_secs: p.ttr_secs,
        time_left_secs: p.time_left_secs,
        reserves: p.reserves,
        timeouts: p.timeouts,
        releases: p.releases,
        buries: p.buries,
        kicks: p.kicks,
    })
}

pub fn tube_stats_to_proto(t: &TubeStats) -> TubeStatsProto {
    TubeStatsProto {
        name: t.name.to_string(),
        jobs: Some(counts_to_proto(&t.jobs)),
        total_jobs: t.total_jobs,
        using: t.using,
        watching: t.watching,
        waiting: t.waiting,
        cmd_delete: t.cmd_delete,
        cmd_pause_tube: t.cmd_pause_tube,
        pause_secs: t.pause_secs,
        pause_left_secs: t.pause_left_secs,
    }
}

pub fn tube_stats_from_proto(p: &TubeStatsProto) -> TubeStats {
    TubeStats {
        name: p.name.as_str().into(),
        jobs: counts_from_proto(p.jobs.as_ref()),
        total_jobs: p.total_jobs,
        using: p.using,
        watching: p.watching,
        waiting: p.waiting,
        cmd_delete: p.cmd_delete,
        cmd_pause_tube: p.cmd_pause_tube,
        pause_secs: p.pause_secs,
        pause_left_secs: p.pause_left_secs,
    }
}

pub fn cluster_stats_to_proto(s: &ClusterStats) -> GetStatsResponse {
    let m = &s.machine;
    let machine = MachineStatsProto {
        jobs: Some(counts_to_proto(&m.jobs)),
        counters: Some(counters_to_proto(&m.counters)),
        tubes: m.tubes,
        producers: m.producers,
        workers: m.workers,
        waiting: m.waiting,
    };
    GetStatsResponse { machine: Some(machine), log_oldest_index: s.log_oldest_index, log_current_index: s.log_current_index }
}

pub fn cluster_stats_from_proto(p: &GetStatsResponse) -> ClusterStats {
    let m = p.machine.unwrap_or_default();
    let machine = MachineStats {
        jobs: counts_from_proto(m.jobs.as_ref()),
        counters: m.counters.as_ref().map(counters_from_proto).unwrap_or_default(),
        tubes: m.tubes,
        producers: m.producers,
        workers: m.workers,
        waiting: m.waiting,
    };
    ClusterStats { machine, log_oldest_index: p.log_oldest_index, log_current_index: p.log_current_index }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::Counters;

    /// Every field survives the trip to the wire and back: each is given a value of its own.
    #[test]
    fn stats_round_trip() {
        let jobs = JobCounts { urgent: 1, ready: 2, reserved: 3, delayed: 4, buried: 5 };
        for state in [BrowseState::Ready, BrowseState::Delayed, BrowseState::Reserved, BrowseState::Buried] {
            let job = JobStats {
                id: 6,
                tube: "t".into(),
                state,
                pri: 7,
                age_secs: 8,
                delay_secs: 9,
                ttr_secs: 10,
                time_left_secs: -11,
                reserves: 12,
                timeouts: 13,
                releases: 14,
                buries: 15,
                kicks: 16,
            };
            assert_eq!(job_stats_from_proto(&job_stats_to_proto(&job)), Ok(job));
        }
        let tube = TubeStats {
            name: "t".into(),
            jobs: jobs.clone(),
            total_jobs: 6,
            using: 7,
            watching: 8,
            waiting: 9,
            cmd_delete: 10,
            cmd_pause_tube: 11,
            pause_secs: 12,
            pause_left_secs: -13,
        };
        assert_eq!(tube_stats_from_proto(&tube_stats_to_proto(&tube)), tube);
        let counters = Counters { cmd_put: 1, cmd_reserve_job: 2, total_jobs: 3, ..Counters::default() };
        let machine = MachineStats { jobs, counters, tubes: 6, producers: 7, workers: 8, waiting: 9 };
        let cluster = ClusterStats { machine, log_oldest_index: 10, log_current_index: 11 };
        assert_eq!(cluster_stats_from_proto(&cluster_stats_to_proto(&cluster)), cluster);
    }

    /// A job whose id is negative or whose state is none a job is in does not decode.
    #[test]
    fn bad_job_stats_do_not_decode() {
        let good = JobStatsProto { id: 1, state: JobStateProto::Ready.into(), ..JobStatsProto::default() };
        assert!(job_stats_from_proto(&good).is_ok());
        assert!(job_stats_from_proto(&JobStatsProto { id: -1, ..good.clone() }).is_err());
        assert!(job_stats_from_proto(&JobStatsProto { state: JobStateProto::Deleted.into(), ..good.clone() }).is_err());
        assert!(job_stats_from_proto(&JobStatsProto { state: 99, ..good }).is_err());
    }
}
