//! Small builders that keep the checkers' tests short. Times are milliseconds; every job goes
//! to tube `t` unless a test says otherwise.

use std::time::Duration;

use crate::history::{Answer, Call, ClientId, FinalJob, FinalState, History, HoldRisk, JobId, Record};

pub const TUBE: &str = "t";

/// A history under construction.
#[derive(Default)]
pub struct Hist(pub History);

impl Hist {
    pub fn new() -> Self {
        Hist::default()
    }

    /// Client `client` sent `call` at `start_ms` and got `answer` at `end_ms`.
    pub fn call(mut self, client: ClientId, start_ms: u64, end_ms: u64, call: Call, answer: Answer) -> Self {
        self.0.records.push(record(client, start_ms, end_ms, call, Some(answer)));
        self
    }

    /// Client `client` sent `call` at `start_ms` and gave up at `end_ms` without an answer.
    pub fn lost(mut self, client: ClientId, start_ms: u64, end_ms: u64, call: Call) -> Self {
        self.0.records.push(record(client, start_ms, end_ms, call, None));
        self
    }

    /// From `from_ms` on, holds of `client` taken before `until_ms` may be released.
    pub fn risk(mut self, client: ClientId, from_ms: u64, until_ms: Option<u64>) -> Self {
        let risk = HoldRisk { client, from: ms(from_ms), until: until_ms.map(ms) };
        self.0.risks.push(risk);
        self
    }

    /// At the end the cluster holds job `id` in tube `t` with `body`.
    pub fn fin(mut self, id: JobId, state: FinalState, body: &str) -> Self {
        let job = FinalJob { tube: TUBE.to_string(), state, body: body.as_bytes().to_vec() };
        self.0.final_jobs.insert(id, job);
        self
    }

    pub fn done(self) -> History {
        self.0
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn record(client: ClientId, start_ms: u64, end_ms: u64, call: Call, answer: Option<Answer>) -> Record {
    Record { client, call, start: ms(start_ms), end: ms(end_ms), answer }
}

/// `put 0 0 <ttr> <body>` into tube `t`.
pub fn put(body: &str, ttr_secs: u32) -> Call {
    put_delayed(body, 0, ttr_secs)
}

/// `put 0 <delay> <ttr> <body>` into tube `t`.
pub fn put_delayed(body: &str, delay_secs: u32, ttr_secs: u32) -> Call {
    Call::Put { tube: TUBE.to_string(), pri: 0, delay_secs, ttr_secs, body: body.as_bytes().to_vec() }
}

/// `reserve` watching tube `t`.
pub fn reserve() -> Call {
    Call::Reserve { tube: TUBE.to_string(), timeout_secs: None }
}

/// `release <id> 0 <delay>`.
pub fn release(id: JobId, delay_secs: u32) -> Call {
    Call::Release { id, pri: 0, delay_secs }
}

/// `bury <id> 0`.
pub fn bury(id: JobId) -> Call {
    Call::Bury { id, pri: 0 }
}

/// `kick 100` on tube `t`.
pub fn kick() -> Call {
    Call::Kick { tube: TUBE.to_string(), bound: 100 }
}

/// `RESERVED <id> <body>`.
pub fn reserved(id: JobId, body: &str) -> Answer {
    Answer::Reserved { id, body: body.as_bytes().to_vec() }
}

/// `FOUND <id> <body>`.
pub fn found(id: JobId, body: &str) -> Answer {
    Answer::Found { id, body: body.as_bytes().to_vec() }
}
