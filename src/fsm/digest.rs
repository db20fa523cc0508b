//! A canonical digest of the whole state: two machines with equal digests hold the same jobs,
//! tubes, sessions, waits, timers, counters and clock.

use std::hash::{Hash, Hasher};

use super::machine::Fsm;

/// 64-bit FNV-1a: fixed and simple, so the same state hashes the same on every replica and in
/// every process (std's hashers promise neither).
struct Fnv1a(u64);

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
}

impl Fsm {
    /// The digest of the entire state, jobs taken in id order.
    pub fn digest(&self) -> u64 {
        let s = &self.s;
        let mut h = Fnv1a(0xCBF2_9CE4_8422_2325);
        (s.clock, s.next_job_id, s.next_bury_seq, s.next_wait_seq, s.next_tube_id).hash(&mut h);
        s.counters.hash(&mut h);
        let mut ids: Vec<_> = s.jobs.keys().copied().collect();
        ids.sort_unstable();
        ids.len().hash(&mut h);
        for id in ids {
            s.jobs[&id].hash(&mut h);
        }
        s.tubes.hash(&mut h);
        for key in s.client_keys() {
            (key, &s.sessions[key]).hash(&mut h);
        }
        s.waits.hash(&mut h);
        s.timers.hash(&mut h);
        (&s.leases, &s.lease_proxies, s.next_lease_id).hash(&mut h);
        h.finish()
    }
}
