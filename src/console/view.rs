//! The JSON the console's page reads, made from the state machine's and the cluster's own
//! types. Pure: values in, JSON out.

use serde_json::{json, Value};

use crate::api::NodeStatusResponse;
use crate::cli::status::ClusterView;
use crate::fsm::{JobCounts, JobView, Millis, TubeSummary};

/// How much of a body a job's row shows.
const PREVIEW_BYTES: usize = 80;

pub fn counts(c: &JobCounts) -> Value {
    json!({ "urgent": c.urgent, "ready": c.ready, "reserved": c.reserved, "delayed": c.delayed, "buried": c.buried })
}

pub fn tube(t: &TubeSummary) -> Value {
    json!({
        "seq": t.seq,
        "name": &*t.name,
        "counts": counts(&t.counts),
        "waiting": t.waiting,
        "using": t.using,
        "watching": t.watching,
        "total_jobs": t.total_jobs,
        "cmd_delete": t.cmd_delete,
        "pause_secs": t.pause_secs,
        "pause_left_secs": t.pause_left_secs,
    })
}

fn job_fields(j: &JobView, now: Millis) -> serde_json::Map<String, Value> {
    let fields = json!({
        "id": j.id,
        "tube": j.tube,
        "state": j.state.kind().name(),
        "pri": j.pri,
        "age_secs": now.saturating_sub(j.created_ms) / 1000,
        "delay_secs": j.delay_secs,
        "ttr_secs": j.ttr_secs,
        "time_left_secs": j.state.secs_left(now).max(0),
        "reserves": j.reserves,
        "timeouts": j.timeouts,
        "releases": j.releases,
        "buries": j.buries,
        "kicks": j.kicks,
        "body_bytes": j.body.len(),
    });
    match fields {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object is an object"),
    }
}

/// A job's row in a listing: its stats and the start of its body.
pub fn job_row(j: &JobView, now: Millis) -> Value {
    let mut row = job_fields(j, now);
    let head = &j.body[..j.body.len().min(PREVIEW_BYTES)];
    let preview = match std::str::from_utf8(head) {
        Ok(text) => text.to_string(),
        // A cut may fall inside a character: show what decodes, then the rest as hex.
        Err(e) if e.error_len().is_none() => String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned(),
        Err(_) => hex(head),
    };
    row.insert("body_preview".into(), preview.into());
    Value::Object(row)
}

/// A job with its whole body: as text when it is UTF-8, and always as hex.
pub fn job_detail(j: &JobView, now: Millis) -> Value {
    let mut detail = job_fields(j, now);
    detail.insert("body_text".into(), std::str::from_utf8(&j.body).ok().map_or(Value::Null, |t| t.into()));
    detail.insert("body_hex".into(), hex(&j.body).into());
    Value::Object(detail)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The cluster: each member as the leader sees it, with its own word on its role, term and
/// indexes.
pub fn cluster(v: &ClusterView) -> Value {
    let own = |id: u64| -> Option<&NodeStatusResponse> { v.answers.get(&id).and_then(|a| a.as_ref().ok()) };
    let members: Vec<Value> = v
        .members
        .iter()
        .map(|m| {
            let mine = own(m.id);
            json!({
                "id": m.id,
                "addr": m.addr,
                "voter": m.voter,
                "leader": m.leader,
                "role": m.own.as_ref().ok().map(|(role, _, _)| crate::cli::status::role_name(*role)),
                "term": m.own.as_ref().ok().map(|(_, term, _)| term),
                "version": m.own.as_ref().ok().map(|(_, _, version)| version),
                "error": m.own.as_ref().err(),
                "commit_index": mine.map(|s| s.commit_index),
                "applied_index": mine.map(|s| s.applied_index),
                "snapshot_index": mine.map(|s| s.snapshot_index),
                "match_index": m.match_index,
                "lag": m.lag,
                "last_contact_ms": m.last_contact_ms,
            })
        })
        .collect();
    json!({
        "leader_id": v.source.leader_id,
        "term": v.source.term,
        "view_of": v.source.node_id,
        "leader_missing": v.leader_missing,
        "members": members,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::fsm::JobState;

    fn job(body: &'static [u8]) -> JobView {
        JobView {
            id: 7,
            tube: "t".into(),
            pri: 1,
            state: JobState::Delayed { until: 9_000 },
            delay_secs: 5,
            ttr_secs: 60,
            created_ms: 1_000,
            body: Bytes::from_static(body),
            reserves: 0,
            timeouts: 0,
            releases: 0,
            buries: 0,
            kicks: 0,
        }
    }

    /// A row shows a text body's start, a binary body in hex; the detail has both forms
    /// (text only when the body is UTF-8), and the times are counted from `now`.
    #[test]
    fn rows_and_details() {
        let row = job_row(&job(b"{\"a\":1}"), 4_000);
        assert_eq!((row["body_preview"].as_str(), row["age_secs"].as_u64(), row["time_left_secs"].as_i64()), (Some("{\"a\":1}"), Some(3), Some(5)));
        assert_eq!(row["state"], "delayed");
        let binary = job_detail(&job(b"\xff\x00"), 4_000);
        assert_eq!((binary["body_text"].is_null(), binary["body_hex"].as_str()), (true, Some("ff00")));
        assert_eq!(job_row(&job(b"\xff\x00"), 4_000)["body_preview"], "ff00");
        let long: &'static [u8] = "é".repeat(60).leak().as_bytes();
        let cut = job_row(&job(long), 4_000);
        assert_eq!(cut["body_preview"].as_str().map(|p| p.chars().count()), Some(PREVIEW_BYTES / 2));
    }
}
