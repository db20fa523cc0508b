//! The drain, once the faults are over and the clients gone: through a proxy, each tube's
//! buried and delayed jobs are kicked and every ready job is reserved and deleted, round after
//! round, until the cluster's `stats` counts no job (a job held by a session whose proxy
//! died comes back when its lease runs out). Every kick, reserve and delete is recorded like a
//! client's call, so the checkers see where each job went, and the run ends with no job left.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use coolbeans::history::{Answer, Call, ClientId, HoldRisk, Record};

use crate::conn::Conn;
use crate::record::Recorder;
use crate::worker::PATIENCE;

/// Pause between two rounds that left jobs behind.
const ROUND_PAUSE: Duration = Duration::from_millis(500);
/// Each kick's bound: more than the run ever puts into one tube.
const KICK_BOUND: u32 = 1_000_000;

/// The drainer: one client of the history.
pub struct Drainer<'a> {
    id: ClientId,
    record: &'a Recorder,
    addrs: &'a [SocketAddr],
    /// Jobs deleted.
    pub deleted: u64,
    /// The tube the current connection watches.
    watching: String,
    /// When the current connection last answered.
    alive_at: Duration,
}

impl<'a> Drainer<'a> {
    pub fn new(id: ClientId, record: &'a Recorder, addrs: &'a [SocketAddr]) -> Drainer<'a> {
        Drainer { id, record, addrs, deleted: 0, watching: String::new(), alive_at: Duration::ZERO }
    }

    /// Drains until the cluster holds no job; fails with what is left once `stall` passes
    /// without a job deleted (a drain that goes on deleting may take as long as it needs).
    pub fn drain(&mut self, stall: Duration) -> Result<(), String> {
        let mut progress = (Instant::now(), self.deleted);
        let mut conn: Option<Conn> = None;
        let mut left = String::from("nothing asked yet");
        for attempt in 0.. {
            if self.deleted > progress.1 {
                progress = (Instant::now(), self.deleted);
            }
            if progress.0.elapsed() >= stall {
                return Err(format!("no job deleted for {stall:?}, yet jobs are left: {left}"));
            }
            if conn.is_none() {
                conn = Conn::open(self.addrs[attempt % self.addrs.len()]).ok();
                self.watching = "default".into();
                self.alive_at = self.record.now();
            }
            let Some(c) = conn.as_mut() else {
                std::thread::sleep(ROUND_PAUSE);
                continue;
            };
            match self.round(c) {
                Ok(None) => return Ok(()),
                Ok(Some(counts)) => left = counts,
                Err(e) => {
                    left = format!("the drain's connection failed: {e}");
                    let (from, until) = (self.alive_at, Some(self.record.now()));
                    self.record.risk(HoldRisk { client: self.id, from, until });
                    conn = None;
                }
            }
            std::thread::sleep(ROUND_PAUSE);
        }
        unreachable!("the loop ends when the drain stalls")
    }

    /// One pass over every tube; answers `None` if the cluster then holds no job, else the
    /// counts it reports.
    fn round(&mut self, c: &mut Conn) -> io::Result<Option<String>> {
        let tubes = c.yaml("list-tubes", PATIENCE)?;
        for tube in tubes.lines().filter_map(|line| line.strip_prefix("- ")) {
            self.drain_tube(c, tube)?;
        }
        let stats = c.yaml("stats", PATIENCE)?;
        let counts: Vec<&str> = stats
            .lines()
            .filter(|line| {
                ["current-jobs-ready:", "current-jobs-reserved:", "current-jobs-delayed:", "current-jobs-buried:"]
                    .iter()
                    .any(|key| line.starts_with(key))
            })
            .collect();
        let empty = counts.len() == 4 && counts.iter().all(|line| line.ends_with(" 0"));
        Ok((!empty).then(|| counts.join(", ")))
    }

    /// Kicks `tube`'s buried (else delayed) jobs, then reserves and deletes its ready ones.
    fn drain_tube(&mut self, c: &mut Conn, tube: &str) -> io::Result<()> {
        c.expect(&format!("use {tube}"), &format!("USING {tube}"), PATIENCE)?;
        if self.watching != tube {
            c.expect(&format!("watch {tube}"), "WATCHING 2", PATIENCE)?;
            c.expect(&format!("ignore {}", self.watching), "WATCHING 1", PATIENCE)?;
            self.watching = tube.to_string();
        }
        self.call(c, Call::Kick { tube: tube.to_string(), bound: KICK_BOUND })?;
        loop {
            match self.call(c, Call::Reserve { tube: tube.to_string(), timeout_secs: Some(0) })? {
                Answer::Reserved { id, .. } => {
                    if self.call(c, Call::Delete(id))? == Answer::Deleted {
                        self.deleted += 1;
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// Makes and records one call; an unknown outcome is an error, as it ends the connection.
    fn call(&mut self, c: &mut Conn, call: Call) -> io::Result<Answer> {
        let start = self.record.now();
        let answer = c.call(&call, PATIENCE);
        let end = self.record.now();
        let known = match &answer {
            Ok(Answer::Other(line)) => Err(io::Error::other(format!("answered {line:?}"))),
            Ok(a) => Ok(a.clone()),
            Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
        };
        self.record.record(Record { client: self.id, call, start, end, answer: answer.ok() });
        if known.is_ok() {
            self.alive_at = end;
        }
        known
    }
}
