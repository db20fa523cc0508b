//! The YAML bodies of `stats-job`, `stats-tube` and `stats`, as beanstalkd 1.13 writes them:
//! "---\n" and one "key: value\n" a line, in beanstalkd's order, string values quoted. The
//! one writer of them: the proxy's answers and the gRPC API's Yaml calls both use it.

use std::fmt::{Display, Write};

use crate::fsm::{JobCounts, JobStats, MachineStats, TubeStats};

use super::command::CommandKind;

/// What `stats` reports that the state machine does not keep: commands that never reach the
/// log, and facts about the serving process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Commands the serving proxy answered, by `CommandKind::index`. `stats` shows those
    /// that never reach the log (peeks, stats, lists); the state machine counts the others.
    pub commands: [u64; CommandKind::COUNT],
    /// Puts answered by the proxy without reaching the log (JOB_TOO_BIG, bytes after the
    /// numbers, a body cut short by the client leaving): beanstalkd counts them in `cmd-put`.
    pub cmd_put_unlogged: u64,
    /// Pause-tubes refused for a bad name after the delay read: beanstalkd counts those too.
    pub cmd_pause_tube_unlogged: u64,
    pub max_job_size: u64,
    pub current_connections: u64,
    pub total_connections: u64,
    pub pid: u64,
    pub version: String,
    pub rusage_utime_us: u64,
    pub rusage_stime_us: u64,
    pub uptime_secs: u64,
    /// The answering node's log: its snapshot index and its last applied index.
    pub binlog_oldest_index: u64,
    pub binlog_current_index: u64,
    pub binlog_records_migrated: u64,
    pub binlog_records_written: u64,
    pub binlog_max_size: u64,
    pub draining: bool,
    pub id: String,
    pub hostname: String,
    pub os: String,
    pub platform: String,
}

impl ServerStats {
    fn count(&self, kind: CommandKind) -> u64 {
        self.commands[kind.index()]
    }
}

/// Everything `stats` reports: the state machine's counts and the server's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub machine: MachineStats,
    pub server: ServerStats,
}

/// Writes `key: value\n` lines into a YAML body.
struct Yaml(String);

impl Yaml {
    fn new() -> Self {
        Yaml(String::from("---\n"))
    }

    fn field(&mut self, key: &str, value: impl Display) -> &mut Self {
        let _ = writeln!(self.0, "{key}: {value}");
        self
    }

    fn quoted(&mut self, key: &str, value: &str) -> &mut Self {
        let _ = writeln!(self.0, "{key}: \"{value}\"");
        self
    }

    fn job_counts(&mut self, counts: &JobCounts) -> &mut Self {
        self.field("current-jobs-urgent", counts.urgent)
            .field("current-jobs-ready", counts.ready)
            .field("current-jobs-reserved", counts.reserved)
            .field("current-jobs-delayed", counts.delayed)
            .field("current-jobs-buried", counts.buried)
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

/// Microseconds as beanstalkd writes a `struct timeval`: seconds, a point, six digits.
fn micros(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

/// The body of `stats-job` (beanstalkd's STATS_JOB_FMT).
pub fn job_stats_yaml(job: &JobStats) -> String {
    Yaml::new()
        .field("id", job.id)
        .quoted("tube", &job.tube)
        .field("state", job.state.name())
        .field("pri", job.pri)
        .field("age", job.age_secs)
        .field("delay", job.delay_secs)
        .field("ttr", job.ttr_secs)
        .field("time-left", job.time_left_secs)
        // beanstalkd's binlog file of the job: there is none.
        .field("file", 0)
        .field("reserves", job.reserves)
        .field("timeouts", job.timeouts)
        .field("releases", job.releases)
        .field("buries", job.buries)
        .field("kicks", job.kicks)
        .finish()
}

/// The body of `stats-tube` (beanstalkd's STATS_TUBE_FMT).
pub fn tube_stats_yaml(tube: &TubeStats) -> String {
    Yaml::new()
        .quoted("name", &tube.name)
        .job_counts(&tube.jobs)
        .field("total-jobs", tube.total_jobs)
        .field("current-using", tube.using)
        .field("current-watching", tube.watching)
        .field("current-waiting", tube.waiting)
        .field("cmd-delete", tube.cmd_delete)
        .field("cmd-pause-tube", tube.cmd_pause_tube)
        .field("pause", tube.pause_secs)
        .field("pause-time-left", tube.pause_left_secs)
        .finish()
}

/// The body of `stats` (beanstalkd's STATS_FMT). A command that goes through the log is the
/// state machine's count (plus the server's refusals that beanstalkd counts too); the others
/// are the server's.
pub fn stats_yaml(stats: &Stats) -> String {
    let (m, s) = (&stats.machine, &stats.server);
    let c = &m.counters;
    let mut yaml = Yaml::new();
    yaml.job_counts(&m.jobs)
        .field("cmd-put", c.cmd_put + s.cmd_put_unlogged)
        .field("cmd-peek", s.count(CommandKind::Peek))
        .field("cmd-peek-ready", s.count(CommandKind::PeekReady))
        .field("cmd-peek-delayed", s.count(CommandKind::PeekDelayed))
        .field("cmd-peek-buried", s.count(CommandKind::PeekBuried))
        .field("cmd-reserve", c.cmd_reserve)
        .field("cmd-reserve-with-timeout", c.cmd_reserve_with_timeout)
        .field("cmd-delete", c.cmd_delete)
        .field("cmd-release", c.cmd_release)
        .field("cmd-use", c.cmd_use)
        .field("cmd-watch", c.cmd_watch)
        .field("cmd-ignore", c.cmd_ignore)
        .field("cmd-bury", c.cmd_bury)
        .field("cmd-kick", c.cmd_kick)
        .field("cmd-touch", c.cmd_touch)
        .field("cmd-stats", s.count(CommandKind::Stats))
        .field("cmd-stats-job", s.count(CommandKind::StatsJob))
        .field("cmd-stats-tube", s.count(CommandKind::StatsTube))
        .field("cmd-list-tubes", s.count(CommandKind::ListTubes))
        .field("cmd-list-tube-used", s.count(CommandKind::ListTubeUsed))
        .field("cmd-list-tubes-watched", s.count(CommandKind::ListTubesWatched))
        .field("cmd-pause-tube", c.cmd_pause_tube + s.cmd_pause_tube_unlogged)
        .field("job-timeouts", c.job_timeouts)
        .field("total-jobs", c.total_jobs)
        .field("max-job-size", s.max_job_size)
        .field("current-tubes", m.tubes)
        .field("current-connections", s.current_connections)
        .field("current-producers", m.producers)
        .field("current-workers", m.workers)
        .field("current-waiting", m.waiting)
        .field("total-connections", s.total_connections);
    server_facts(&mut yaml, s);
    yaml.finish()
}

/// The process and log lines that end `stats`.
fn server_facts(yaml: &mut Yaml, s: &ServerStats) {
    yaml.field("pid", s.pid)
        .quoted("version", &s.version)
        .field("rusage-utime", micros(s.rusage_utime_us))
        .field("rusage-stime", micros(s.rusage_stime_us))
        .field("uptime", s.uptime_secs)
        .field("binlog-oldest-index", s.binlog_oldest_index)
        .field("binlog-current-index", s.binlog_current_index)
        .field("binlog-records-migrated", s.binlog_records_migrated)
        .field("binlog-records-written", s.binlog_records_written)
        .field("binlog-max-size", s.binlog_max_size)
        .field("draining", s.draining)
        // Unquoted, as beanstalkd writes its id.
        .field("id", &s.id)
        .quoted("hostname", &s.hostname)
        .quoted("os", &s.os)
        .quoted("platform", &s.platform);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::{BrowseState, Counters};

    /// stats-job is beanstalkd's STATS_JOB_FMT byte for byte: tube quoted, state by name,
    /// numbers plain (a negative time left too), `file` always 0.
    #[test]
    fn job_yaml_is_exact() {
        let job = JobStats {
            id: 5,
            tube: "a(b)".into(),
            state: BrowseState::Delayed,
            pri: 4_294_967_295,
            age_secs: 3,
            delay_secs: 5,
            ttr_secs: 60,
            time_left_secs: -1,
            reserves: 6,
            timeouts: 7,
            releases: 8,
            buries: 9,
            kicks: 10,
        };
        assert_eq!(
            job_stats_yaml(&job),
            "---\nid: 5\ntube: \"a(b)\"\nstate: delayed\npri: 4294967295\nage: 3\ndelay: 5\nttr: 60\ntime-left: -1\n\
             file: 0\nreserves: 6\ntimeouts: 7\nreleases: 8\nburies: 9\nkicks: 10\n"
        );
        for (state, name) in [(BrowseState::Ready, "ready"), (BrowseState::Reserved, "reserved"), (BrowseState::Buried, "buried")] {
            assert!(job_stats_yaml(&JobStats { state, ..job.clone() }).contains(&format!("\nstate: {name}\n")));
        }
    }

    /// stats-tube is beanstalkd's STATS_TUBE_FMT byte for byte: name quoted, the job counts
    /// in state order, the pause and its time left last.
    #[test]
    fn tube_yaml_is_exact() {
        let tube = TubeStats {
            name: "default".into(),
            jobs: JobCounts { urgent: 1, ready: 2, reserved: 3, delayed: 4, buried: 5 },
            total_jobs: 6,
            using: 7,
            watching: 8,
            waiting: 9,
            cmd_delete: 10,
            cmd_pause_tube: 11,
            pause_secs: 30,
            pause_left_secs: 27,
        };
        assert_eq!(
            tube_stats_yaml(&tube),
            "---\nname: \"default\"\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 2\ncurrent-jobs-reserved: 3\n\
             current-jobs-delayed: 4\ncurrent-jobs-buried: 5\ntotal-jobs: 6\ncurrent-using: 7\n\
             current-watching: 8\ncurrent-waiting: 9\ncmd-delete: 10\ncmd-pause-tube: 11\npause: 30\n\
             pause-time-left: 27\n"
        );
    }

    /// Server facts with every field distinct, and each peek, stats and list command counted
    /// its own number of times (10 + its place).
    fn server() -> ServerStats {
        let mut commands = [0; CommandKind::COUNT];
        for (i, count) in commands.iter_mut().enumerate() {
            *count = 10 + i as u64;
        }
        ServerStats {
            commands,
            cmd_put_unlogged: 2,
            cmd_pause_tube_unlogged: 3,
            max_job_size: 65535,
            current_connections: 5,
            total_connections: 9,
            pid: 4242,
            version: "1.13".into(),
            rusage_utime_us: 1_500_000,
            rusage_stime_us: 250,
            uptime_secs: 77,
            binlog_oldest_index: 1,
            binlog_current_index: 2,
            binlog_records_migrated: 3,
            binlog_records_written: 4,
            binlog_max_size: 10_485_760,
            draining: false,
            id: "abc123".into(),
            hostname: "node-1".into(),
            os: "#1 SMP".into(),
            platform: "x86_64".into(),
        }
    }

    /// stats is beanstalkd's STATS_FMT byte for byte: the machine's counts and the server's in
    /// beanstalkd's order, cmd-put and cmd-pause-tube adding the server's refusals, the
    /// server's counts of logged commands unused, rusage as seconds with six digits, strings
    /// quoted as 1.13 does but the id.
    #[test]
    fn stats_yaml_is_exact() {
        let counters = Counters {
            cmd_put: 100,
            cmd_reserve: 101,
            cmd_reserve_with_timeout: 102,
            cmd_reserve_job: 103,
            cmd_delete: 104,
            cmd_release: 105,
            cmd_use: 106,
            cmd_watch: 107,
            cmd_ignore: 108,
            cmd_bury: 109,
            cmd_kick: 110,
            cmd_touch: 111,
            cmd_pause_tube: 112,
            job_timeouts: 113,
            total_jobs: 114,
        };
        let jobs = JobCounts { urgent: 1, ready: 2, reserved: 3, delayed: 4, buried: 5 };
        let machine = MachineStats { jobs, counters, tubes: 6, producers: 7, workers: 8, waiting: 9 };
        assert_eq!(
            stats_yaml(&Stats { machine, server: server() }),
            "---\n\
             current-jobs-urgent: 1\n\
             current-jobs-ready: 2\n\
             current-jobs-reserved: 3\n\
             current-jobs-delayed: 4\n\
             current-jobs-buried: 5\n\
             cmd-put: 102\n\
             cmd-peek: 21\n\
             cmd-peek-ready: 22\n\
             cmd-peek-delayed: 23\n\
             cmd-peek-buried: 24\n\
             cmd-reserve: 101\n\
             cmd-reserve-with-timeout: 102\n\
             cmd-delete: 104\n\
             cmd-release: 105\n\
             cmd-use: 106\n\
             cmd-watch: 107\n\
             cmd-ignore: 108\n\
             cmd-bury: 109\n\
             cmd-kick: 110\n\
             cmd-touch: 111\n\
             cmd-stats: 29\n\
             cmd-stats-job: 27\n\
             cmd-stats-tube: 28\n\
             cmd-list-tubes: 30\n\
             cmd-list-tube-used: 31\n\
             cmd-list-tubes-watched: 32\n\
             cmd-pause-tube: 115\n\
             job-timeouts: 113\n\
             total-jobs: 114\n\
             max-job-size: 65535\n\
             current-tubes: 6\n\
             current-connections: 5\n\
             current-producers: 7\n\
             current-workers: 8\n\
             current-waiting: 9\n\
             total-connections: 9\n\
             pid: 4242\n\
             version: \"1.13\"\n\
             rusage-utime: 1.500000\n\
             rusage-stime: 0.000250\n\
             uptime: 77\n\
             binlog-oldest-index: 1\n\
             binlog-current-index: 2\n\
             binlog-records-migrated: 3\n\
             binlog-records-written: 4\n\
             binlog-max-size: 10485760\n\
             draining: false\n\
             id: abc123\n\
             hostname: \"node-1\"\n\
             os: \"#1 SMP\"\n\
             platform: \"x86_64\"\n"
        );
    }

    /// Whole seconds print with six zeros, and a draining server says so.
    #[test]
    fn stats_formats() {
        let server = ServerStats { rusage_utime_us: 2_000_000, rusage_stime_us: 999_999, draining: true, ..server() };
        let yaml = stats_yaml(&Stats { machine: MachineStats::default(), server });
        assert!(yaml.contains("\nrusage-utime: 2.000000\nrusage-stime: 0.999999\n"), "{yaml}");
        assert!(yaml.contains("\ndraining: true\n"), "{yaml}");
    }
}
