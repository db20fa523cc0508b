//! The YAML bodies of `stats-job`, `stats-tube` and `stats`, as beanstalkd 1.13 writes them
//! (string values quoted). Each returns the body only: "---\n" and one "key: value\n" a line.

use std::fmt::Write;

use super::index::{Job, Tube};
use super::machine::Fsm;
use super::types::{JobId, JobState, Millis, ServerStats};

/// Whole seconds from `now` to `at`, truncated toward zero as beanstalkd's integer division.
pub(crate) fn secs_until(at: Millis, now: Millis) -> i64 {
    (at as i64 - now as i64) / 1000
}

/// Writes `key: value\n` lines into a YAML body.
struct Yaml(String);

impl Yaml {
    fn new() -> Self {
        Yaml(String::from("---\n"))
    }

    fn field(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = writeln!(self.0, "{key}: {value}");
        self
    }

    fn quoted(&mut self, key: &str, value: &str) -> &mut Self {
        let _ = writeln!(self.0, "{key}: \"{value}\"");
        self
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.0)
    }
}

/// Jobs of each state, over one tube or all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Ready jobs with priority below 1024 (counted in `ready` too).
    pub urgent: u64,
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
}

impl JobCounts {
    pub(crate) fn of(tube: &Tube) -> Self {
        let mut counts = JobCounts::default();
        counts.add(tube);
        counts
    }

    /// Adds another set of counts into these.
    pub fn add_counts(&mut self, other: &JobCounts) {
        self.urgent += other.urgent;
        self.ready += other.ready;
        self.reserved += other.reserved;
        self.delayed += other.delayed;
        self.buried += other.buried;
    }

    fn add(&mut self, tube: &Tube) {
        self.urgent += tube.urgent_count;
        self.ready += tube.ready.len() as u64;
        self.reserved += tube.reserved_count;
        self.delayed += tube.delayed.len() as u64;
        self.buried += tube.buried.len() as u64;
    }

    fn write(&self, yaml: &mut Yaml) {
        yaml.field("current-jobs-urgent", self.urgent)
            .field("current-jobs-ready", self.ready)
            .field("current-jobs-reserved", self.reserved)
            .field("current-jobs-delayed", self.delayed)
            .field("current-jobs-buried", self.buried);
    }
}

fn job_yaml(job: &Job, tube: &str, now: Millis) -> String {
    let time_left = match &job.state {
        JobState::Reserved { deadline, .. } => secs_until(*deadline, now),
        JobState::Delayed { until } => secs_until(*until, now),
        _ => 0,
    };
    Yaml::new()
        .field("id", job.id)
        .quoted("tube", tube)
        .field("state", job.state.name())
        .field("pri", job.pri)
        .field("age", (now - job.created.min(now)) / 1000)
        .field("delay", job.delay_secs)
        .field("ttr", job.ttr_secs)
        .field("time-left", time_left)
        .field("file", 0)
        .field("reserves", job.reserves)
        .field("timeouts", job.timeouts)
        .field("releases", job.releases)
        .field("buries", job.buries)
        .field("kicks", job.kicks)
        .finish()
}

fn tube_yaml(tube: &Tube, now: Millis) -> String {
    let mut yaml = Yaml::new();
    yaml.quoted("name", &tube.name);
    JobCounts::of(tube).write(&mut yaml);
    let (pause_secs, pause_left) = match tube.pause {
        Some(pause) => (pause.secs, secs_until(pause.until, now)),
        None => (0, 0),
    };
    yaml.field("total-jobs", tube.total_jobs)
        .field("current-using", tube.using_count)
        .field("current-watching", tube.watching_count)
        .field("current-waiting", tube.waiters.len())
        .field("cmd-delete", tube.cmd_delete)
        .field("cmd-pause-tube", tube.cmd_pause_tube)
        .field("pause", pause_secs)
        .field("pause-time-left", pause_left)
        .finish()
}

fn micros(us: u64) -> String {
    format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
}

impl Fsm {
    /// Each tube's jobs by state, in tube creation order.
    pub fn tube_job_counts(&self) -> Vec<(std::sync::Arc<str>, JobCounts)> {
        self.s.tubes.values().map(|tube| (tube.name.clone(), JobCounts::of(tube))).collect()
    }

    /// `stats-job <id>` at time `now_ms` (the machine's clock if that is later).
    pub fn stats_job_yaml(&self, id: JobId, now_ms: Millis) -> Option<String> {
        let job = self.s.jobs.get(&id)?;
        Some(job_yaml(job, &self.s.tubes[&job.tube].name, now_ms.max(self.s.clock)))
    }

    /// `stats-tube <name>`, or None when the tube does not exist.
    pub fn stats_tube_yaml(&self, name: &str, now_ms: Millis) -> Option<String> {
        let tube = self.s.tube_ids.get(name)?;
        Some(tube_yaml(&self.s.tubes[tube], now_ms.max(self.s.clock)))
    }

    /// `stats`: the machine's counts merged with what the serving process knows.
    pub fn stats_yaml(&self, server: &ServerStats) -> String {
        let c = &self.s.counters;
        let mut counts = JobCounts::default();
        for tube in self.s.tubes.values() {
            counts.add(tube);
        }
        let producers = self.s.sessions.values().filter(|s| s.producer).count();
        let workers = self.s.sessions.values().filter(|s| s.worker).count();
        let mut yaml = Yaml::new();
        counts.write(&mut yaml);
        yaml.field("cmd-put", c.cmd_put + server.cmd_put_unlogged)
            .field("cmd-peek", server.cmd_peek)
            .field("cmd-peek-ready", server.cmd_peek_ready)
            .field("cmd-peek-delayed", server.cmd_peek_delayed)
            .field("cmd-peek-buried", server.cmd_peek_buried)
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
            .field("cmd-stats", server.cmd_stats)
            .field("cmd-stats-job", server.cmd_stats_job)
            .field("cmd-stats-tube", server.cmd_stats_tube)
            .field("cmd-list-tubes", server.cmd_list_tubes)
            .field("cmd-list-tube-used", server.cmd_list_tube_used)
            .field("cmd-list-tubes-watched", server.cmd_list_tubes_watched)
            .field("cmd-pause-tube", c.cmd_pause_tube + server.cmd_pause_tube_unlogged)
            .field("job-timeouts", c.job_timeouts)
            .field("total-jobs", c.total_jobs)
            .field("max-job-size", server.max_job_size)
            .field("current-tubes", self.s.tubes.len())
            .field("current-connections", server.current_connections)
            .field("current-producers", producers)
            .field("current-workers", workers)
            .field("current-waiting", self.s.waits.len())
            .field("total-connections", server.total_connections)
            .field("pid", server.pid)
            .quoted("version", &server.version)
            .field("rusage-utime", micros(server.rusage_utime_us))
            .field("rusage-stime", micros(server.rusage_stime_us))
            .field("uptime", server.uptime_secs)
            .field("binlog-oldest-index", server.binlog_oldest_index)
            .field("binlog-current-index", server.binlog_current_index)
            .field("binlog-records-migrated", server.binlog_records_migrated)
            .field("binlog-records-written", server.binlog_records_written)
            .field("binlog-max-size", server.binlog_max_size)
            .field("draining", server.draining)
            .field("id", &server.id)
            .quoted("hostname", &server.hostname)
            .quoted("os", &server.os)
            .quoted("platform", &server.platform)
            .finish()
    }
}

/// The `stats` fields the serving front end knows rather than the state machine, formatted as
/// `stats_yaml` writes them: a front end before a remote cluster puts its own values into the
/// cluster's YAML with `patch_yaml`.
pub fn front_end_fields(server: &ServerStats) -> Vec<(&'static str, String)> {
    let quoted = |s: &str| format!("\"{s}\"");
    vec![
        ("cmd-peek", server.cmd_peek.to_string()),
        ("cmd-peek-ready", server.cmd_peek_ready.to_string()),
        ("cmd-peek-delayed", server.cmd_peek_delayed.to_string()),
        ("cmd-peek-buried", server.cmd_peek_buried.to_string()),
        ("cmd-stats", server.cmd_stats.to_string()),
        ("cmd-stats-job", server.cmd_stats_job.to_string()),
        ("cmd-stats-tube", server.cmd_stats_tube.to_string()),
        ("cmd-list-tubes", server.cmd_list_tubes.to_string()),
        ("cmd-list-tube-used", server.cmd_list_tube_used.to_string()),
        ("cmd-list-tubes-watched", server.cmd_list_tubes_watched.to_string()),
        ("max-job-size", server.max_job_size.to_string()),
        ("current-connections", server.current_connections.to_string()),
        ("total-connections", server.total_connections.to_string()),
        ("pid", server.pid.to_string()),
        ("version", quoted(&server.version)),
        ("rusage-utime", micros(server.rusage_utime_us)),
        ("rusage-stime", micros(server.rusage_stime_us)),
        ("uptime", server.uptime_secs.to_string()),
        ("draining", server.draining.to_string()),
        ("id", server.id.clone()),
        ("hostname", quoted(&server.hostname)),
        ("os", quoted(&server.os)),
        ("platform", quoted(&server.platform)),
    ]
}

/// A front end's own shares of counters the cluster keeps: the commands it refused before
/// they reached the log, which beanstalkd counts all the same. `stats_yaml` adds them too.
pub fn front_end_shares(server: &ServerStats) -> [(&'static str, u64); 2] {
    [("cmd-put", server.cmd_put_unlogged), ("cmd-pause-tube", server.cmd_pause_tube_unlogged)]
}

/// Adds to the numbers a YAML body gives for some keys (`front_end_shares`, say).
pub fn add_to_yaml_counts(yaml: &str, extras: &[(&str, u64)]) -> String {
    let fields: Vec<(&str, String)> = yaml
        .lines()
        .filter_map(|line| line.split_once(": "))
        .filter_map(|(k, v)| {
            let (key, extra) = extras.iter().find(|(key, _)| *key == k)?;
            v.parse::<u64>().ok().map(|n| (*key, (n + extra).to_string()))
        })
        .collect();
    patch_yaml(yaml, &fields)
}

/// Replaces the values of the named keys in a YAML body of `key: value` lines.
pub fn patch_yaml(yaml: &str, fields: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(yaml.len());
    for line in yaml.split_inclusive('\n') {
        let key = line.split_once(": ").map(|(k, _)| k);
        match key.and_then(|k| fields.iter().find(|(f, _)| *f == k)) {
            Some((k, v)) => {
                let _ = writeln!(out, "{k}: {v}");
            }
            None => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod patch_tests {
    use super::*;

    /// Patching the machine's own stats with the same server facts changes nothing, and
    /// patching with other facts changes exactly those lines.
    #[test]
    fn patch_replaces_front_end_fields_only() {
        let fsm = Fsm::new();
        let server = ServerStats { pid: 7, version: "1.0".into(), hostname: "h".into(), ..ServerStats::default() };
        let yaml = fsm.stats_yaml(&server);
        assert_eq!(patch_yaml(&yaml, &front_end_fields(&server)), yaml);
        let other = ServerStats { pid: 9, current_connections: 3, ..server.clone() };
        let patched = patch_yaml(&yaml, &front_end_fields(&other));
        assert_eq!(patched, fsm.stats_yaml(&other));
        assert!(patched.contains("\npid: 9\n") && patched.contains("\ncurrent-connections: 3\n"));
    }
}
