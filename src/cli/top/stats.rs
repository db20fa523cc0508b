//! What `top` reads from a server: the YAML of `list-tubes`, `stats-tube` and `stats`, and the
//! rates between two samples. Pure: bytes and numbers in, values out. Any beanstalkd-protocol
//! server answers these, beanstalkd itself included.

use std::collections::BTreeMap;

use crate::cli::bench::answer::yaml_number;

/// Jobs in each state, of a tube or the whole server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub ready: u64,
    pub reserved: u64,
    pub delayed: u64,
    pub buried: u64,
}

impl JobCounts {
    pub fn total(&self) -> u64 {
        self.ready + self.reserved + self.delayed + self.buried
    }
}

/// One tube's counts, from `stats-tube`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TubeStats {
    pub name: String,
    pub jobs: JobCounts,
    /// Connections waiting in a reserve that watches the tube.
    pub waiting: u64,
    /// Jobs ever put in the tube (`total-jobs`): its put rate is this one's change.
    pub total_jobs: u64,
    /// Deletes of the tube's jobs (`cmd-delete`).
    pub deletes: u64,
}

/// The server's own counts, from `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    pub version: String,
    pub uptime_secs: u64,
    pub connections: u64,
    pub jobs: JobCounts,
    /// `cmd-put` and `cmd-delete`, over every tube.
    pub puts: u64,
    pub deletes: u64,
}

/// One look at the server: its own counts and each tube's, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub server: ServerStats,
    pub tubes: Vec<TubeStats>,
}

/// Puts and deletes per second between two samples; none where a counter went backwards (the
/// tube was dropped and made again, or the server restarted) or was not there before.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    pub puts: Option<f64>,
    pub deletes: Option<f64>,
}

/// The names of a `list-tubes` answer: one `- name` line each.
pub fn tube_names(yaml: &[u8]) -> Vec<String> {
    lines(yaml).filter_map(|line| line.strip_prefix("- ")).map(|name| unquote(name).to_string()).collect()
}

/// A tube's counts from its `stats-tube` YAML; the name is the one asked for.
pub fn tube_stats(name: &str, yaml: &[u8]) -> Result<TubeStats, String> {
    let n = |key: &str| yaml_number(yaml, key).ok_or_else(|| format!("stats-tube {name}: no {key}"));
    Ok(TubeStats {
        name: name.to_string(),
        jobs: job_counts(n)?,
        waiting: n("current-waiting")?,
        total_jobs: n("total-jobs")?,
        deletes: n("cmd-delete")?,
    })
}

/// The server's counts from its `stats` YAML.
pub fn server_stats(yaml: &[u8]) -> Result<ServerStats, String> {
    let n = |key: &str| yaml_number(yaml, key).ok_or_else(|| format!("stats: no {key}"));
    let version = lines(yaml).find_map(|line| line.strip_prefix("version: ")).map(unquote).unwrap_or("?");
    Ok(ServerStats {
        version: version.to_string(),
        uptime_secs: n("uptime")?,
        connections: n("current-connections")?,
        jobs: job_counts(n)?,
        puts: n("cmd-put")?,
        deletes: n("cmd-delete")?,
    })
}

/// The `current-jobs-*` counts, which `stats` and `stats-tube` both give.
fn job_counts(number: impl Fn(&str) -> Result<u64, String>) -> Result<JobCounts, String> {
    Ok(JobCounts {
        ready: number("current-jobs-ready")?,
        reserved: number("current-jobs-reserved")?,
        delayed: number("current-jobs-delayed")?,
        buried: number("current-jobs-buried")?,
    })
}

/// Each tube's rates between `before` and `now`, `elapsed_secs` apart.
pub fn tube_rates(before: &Sample, now: &Sample, elapsed_secs: f64) -> BTreeMap<String, Rates> {
    let earlier: BTreeMap<&str, &TubeStats> = before.tubes.iter().map(|t| (t.name.as_str(), t)).collect();
    now.tubes
        .iter()
        .map(|t| {
            let rates = match earlier.get(t.name.as_str()) {
                Some(b) => Rates { puts: rate(b.total_jobs, t.total_jobs, elapsed_secs), deletes: rate(b.deletes, t.deletes, elapsed_secs) },
                None => Rates::default(),
            };
            (t.name.clone(), rates)
        })
        .collect()
}

/// The server's rates between `before` and `now`, `elapsed_secs` apart.
pub fn server_rates(before: &ServerStats, now: &ServerStats, elapsed_secs: f64) -> Rates {
    Rates { puts: rate(before.puts, now.puts, elapsed_secs), deletes: rate(before.deletes, now.deletes, elapsed_secs) }
}

fn rate(before: u64, now: u64, elapsed_secs: f64) -> Option<f64> {
    (now >= before && elapsed_secs > 0.0).then(|| (now - before) as f64 / elapsed_secs)
}

fn lines(yaml: &[u8]) -> impl Iterator<Item = &str> {
    yaml.split(|&b| b == b'\n').filter_map(|line| std::str::from_utf8(line).ok()).map(|line| line.trim_end_matches('\r'))
}

/// A YAML scalar without the double quotes beanstalkd 1.13 puts around strings.
fn unquote(value: &str) -> &str {
    value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `list-tubes` names come quoted or not, in the server's order.
    #[test]
    fn tube_names_of_a_list() {
        assert_eq!(tube_names(b"---\n- default\n- \"jobs\"\n"), ["default", "jobs"]);
        assert!(tube_names(b"---\n").is_empty());
    }

    /// `stats-tube` as beanstalkd 1.13 writes it gives every count; a missing one is an error.
    #[test]
    fn tube_stats_of_beanstalkds_yaml() {
        let yaml = "---\nname: \"jobs\"\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 3\ncurrent-jobs-reserved: 1\n\
                    current-jobs-delayed: 2\ncurrent-jobs-buried: 4\ntotal-jobs: 17\ncurrent-using: 1\n\
                    current-watching: 1\ncurrent-waiting: 5\ncmd-delete: 7\ncmd-pause-tube: 0\npause: 0\n\
                    pause-time-left: 0\n";
        let t = tube_stats("jobs", yaml.as_bytes()).unwrap();
        let jobs = JobCounts { ready: 3, reserved: 1, delayed: 2, buried: 4 };
        let expected = TubeStats { name: "jobs".into(), jobs, waiting: 5, total_jobs: 17, deletes: 7 };
        assert_eq!(t, expected);
        assert_eq!(tube_stats("jobs", b"---\nname: jobs\n").unwrap_err(), "stats-tube jobs: no current-jobs-ready");
    }

    /// `stats` gives the version unquoted and the server-wide counts.
    #[test]
    fn server_stats_of_a_stats_yaml() {
        let yaml = "---\ncurrent-jobs-urgent: 0\ncurrent-jobs-ready: 9\ncurrent-jobs-reserved: 1\ncurrent-jobs-delayed: 0\n\
                    current-jobs-buried: 2\ncmd-put: 40\ncmd-delete: 30\ncurrent-connections: 3\nversion: \"1.13\"\nuptime: 61\n";
        let s = server_stats(yaml.as_bytes()).unwrap();
        let jobs = JobCounts { ready: 9, reserved: 1, delayed: 0, buried: 2 };
        let expected = ServerStats { version: "1.13".into(), uptime_secs: 61, connections: 3, jobs, puts: 40, deletes: 30 };
        assert_eq!(s, expected);
    }

    /// Rates are counter changes per second; a new tube or a counter that went back has none.
    #[test]
    fn rates_between_samples() {
        let tube = |name: &str, total_jobs, deletes| TubeStats { name: name.into(), total_jobs, deletes, ..TubeStats::default() };
        let before = Sample { server: ServerStats::default(), tubes: vec![tube("a", 10, 4), tube("b", 9, 9)] };
        let now = Sample { server: ServerStats::default(), tubes: vec![tube("a", 30, 5), tube("b", 2, 9), tube("c", 1, 0)] };
        let rates = tube_rates(&before, &now, 2.0);
        assert_eq!(rates["a"], Rates { puts: Some(10.0), deletes: Some(0.5) });
        assert_eq!(rates["b"], Rates { puts: None, deletes: Some(0.0) });
        assert_eq!(rates["c"], Rates::default());
    }
}
