//! `cluster-client status`'s two forms: a table for people, JSON for scripts. Pure.

use super::view::{version_of, voters_version_of, ClusterView, MemberRow};
use crate::api::NodeRole;
use crate::cli::table::{self, Align};

/// The view as lines: what the rows come from, the table (the leader marked `*`), then why
/// any member gave no answer of its own.
pub fn text(view: &ClusterView) -> String {
    let source = &view.source;
    let mut out = Vec::new();
    match &view.leader_missing {
        None => out.push(format!(
            "leader: node {} at {}, term {}, commit index {}, last index {}, operations up to state machine version {}",
            source.node_id,
            address_of(view, source.node_id),
            source.term,
            source.commit_index,
            source.last_index,
            voters_version_of(source)
        )),
        Some(why) => {
            out.push(format!("the leader could not be asked: {why}"));
            out.push(format!(
                "what node {} knows: term {}, commit index {}, last index {} (match and lag are the leader's to know)",
                source.node_id, source.term, source.commit_index, source.last_index
            ));
        }
    }
    let header = ["", "ID", "ADDRESS", "MEMBER", "ROLE", "TERM", "VERSION", "MATCH", "LAG", "LAST CONTACT"];
    let mut rows = vec![header.map(String::from).to_vec()];
    rows.extend(view.members.iter().map(|m| row(m, source.node_id)));
    use Align::{Left, Right};
    out.extend(table::lines(&[Left, Right, Left, Left, Left, Right, Right, Right, Right, Left], &rows));
    for m in &view.members {
        if let Err(why) = &m.own {
            out.push(format!("node {} gave no role, term or version: {why}", m.id));
        }
    }
    out.join("\n")
}

fn address_of(view: &ClusterView, id: u64) -> &str {
    view.members.iter().find(|m| m.id == id).map_or("an unknown address", |m| m.addr.as_str())
}

fn row(m: &MemberRow, source_id: u64) -> Vec<String> {
    let (role, term, version) = match &m.own {
        Ok((role, term, version)) => (role_name(*role).to_string(), term.to_string(), version.to_string()),
        Err(_) => ("?".to_string(), "?".to_string(), "?".to_string()),
    };
    let or_dash = |n: Option<u64>| n.map_or("-".to_string(), |n| n.to_string());
    let contact = match m.last_contact_ms {
        _ if m.id == source_id => "-".to_string(),
        Some(ms) => format!("{} ago", duration(ms)),
        None => "never".to_string(),
    };
    vec![
        if m.leader { "*" } else { "" }.to_string(),
        m.id.to_string(),
        m.addr.clone(),
        if m.voter { "voter" } else { "learner" }.to_string(),
        role,
        term,
        version,
        or_dash(m.match_index),
        or_dash(m.lag),
        contact,
    ]
}

pub fn role_name(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Unknown => "unknown",
        NodeRole::Follower => "follower",
        NodeRole::PreCandidate => "pre-candidate",
        NodeRole::Candidate => "candidate",
        NodeRole::Leader => "leader",
    }
}

/// Milliseconds as a person reads them: `120 ms`, `9.5 s`, `3 min 4 s`.
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// The view as one JSON object. The top-level keys of earlier versions (`node_id`,
/// `leader_id`, `term`, `commit_index`, `applied_index`, and `id`, `addr`, `voter` of each
/// member) keep their meaning: the node asked's own; the rest say where the rows come from.
pub fn json(view: &ClusterView) -> String {
    let a = &view.asked;
    let members: Vec<String> = view.members.iter().map(member_json).collect();
    format!(
        concat!(
            "{{\"node_id\":{},\"leader_id\":{},\"term\":{},\"commit_index\":{},\"applied_index\":{},",
            "\"role\":{},\"version\":{},\"view_of\":{},\"leader_error\":{},\"last_index\":{},\"voters_version\":{},\"members\":[{}]}}"
        ),
        a.node_id,
        a.leader_id,
        a.term,
        a.commit_index,
        a.applied_index,
        json_string(role_name(a.role())),
        version_of(a),
        view.source.node_id,
        view.leader_missing.as_deref().map_or("null".to_string(), json_string),
        view.source.last_index,
        voters_version_of(&view.source),
        members.join(",")
    )
}

fn member_json(m: &MemberRow) -> String {
    let number = |n: Option<u64>| n.map_or("null".to_string(), |n| n.to_string());
    let (role, term, version, error) = match &m.own {
        Ok((role, term, version)) => (json_string(role_name(*role)), term.to_string(), version.to_string(), "null".to_string()),
        Err(why) => ("null".to_string(), "null".to_string(), "null".to_string(), json_string(why)),
    };
    format!(
        concat!(
            "{{\"id\":{},\"addr\":{},\"voter\":{},\"leader\":{},\"role\":{},\"term\":{},\"version\":{},\"error\":{},",
            "\"match_index\":{},\"lag\":{},\"last_contact_ms\":{}}}"
        ),
        m.id,
        json_string(&m.addr),
        m.voter,
        m.leader,
        role,
        term,
        version,
        error,
        number(m.match_index),
        number(m.lag),
        number(m.last_contact_ms)
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::view::assemble;
    use super::super::view::tests::{answer, member, three_members};
    use super::*;

    fn leader_view() -> ClusterView {
        let asked = answer(2, 1, NodeRole::Follower, 5, vec![]);
        let leader = answer(1, 1, NodeRole::Leader, 5, three_members());
        let answers = BTreeMap::from([(1, Ok(leader.clone())), (2, Ok(asked.clone())), (3, Err("cannot reach node".into()))]);
        assemble(asked, Ok(leader), &answers)
    }

    /// The leader's view as a table: a row per member, the leader starred, lag and last
    /// contact in their columns, and why a member gave no role.
    #[test]
    fn table_of_the_leaders_view() {
        let expected = "\
leader: node 1 at 127.0.0.1:7001, term 5, commit index 40, last index 42, operations up to state machine version 1
   ID  ADDRESS         MEMBER   ROLE      TERM  VERSION  MATCH  LAG  LAST CONTACT
*   1  127.0.0.1:7001  voter    leader       5        1     42    0  -
    2  127.0.0.1:7002  voter    follower     5        1     41    1  120 ms ago
    3  127.0.0.1:7003  learner  ?            ?        ?     30   12  9.5 s ago
node 3 gave no role, term or version: cannot reach node";
        assert_eq!(text(&leader_view()), expected);
    }

    /// Without the leader the table says so, and shows the node asked's view without progress.
    #[test]
    fn table_without_the_leader() {
        let members = vec![member(1, true, 0, Some(125_000)), member(2, true, 0, None)];
        let asked = answer(2, 1, NodeRole::Follower, 5, members);
        let answers = BTreeMap::from([(1, Err("timed out".to_string())), (2, Ok(asked.clone()))]);
        let view = assemble(asked, Err("node 1 at 127.0.0.1:7001: timed out".into()), &answers);
        let expected = "\
the leader could not be asked: node 1 at 127.0.0.1:7001: timed out
what node 2 knows: term 5, commit index 40, last index 42 (match and lag are the leader's to know)
   ID  ADDRESS         MEMBER  ROLE      TERM  VERSION  MATCH  LAG  LAST CONTACT
*   1  127.0.0.1:7001  voter   ?            ?        ?      -    -  2 min 5 s ago
    2  127.0.0.1:7002  voter   follower     5        1      -    -  -
node 1 gave no role, term or version: timed out";
        assert_eq!(text(&view), expected);
    }

    /// The JSON keeps the earlier keys (the node asked's) and adds each member's row, with
    /// null for what is not known; strings are escaped.
    #[test]
    fn json_of_the_leaders_view() {
        let mut view = leader_view();
        view.members[2].own = Err("said \"no\"".into());
        let expected = concat!(
            r#"{"node_id":2,"leader_id":1,"term":5,"commit_index":40,"applied_index":40,"role":"follower","version":1,"view_of":1,"#,
            r#""leader_error":null,"last_index":42,"voters_version":1,"members":["#,
            r#"{"id":1,"addr":"127.0.0.1:7001","voter":true,"leader":true,"role":"leader","term":5,"version":1,"error":null,"match_index":42,"lag":0,"last_contact_ms":null},"#,
            r#"{"id":2,"addr":"127.0.0.1:7002","voter":true,"leader":false,"role":"follower","term":5,"version":1,"error":null,"match_index":41,"lag":1,"last_contact_ms":120},"#,
            r#"{"id":3,"addr":"127.0.0.1:7003","voter":false,"leader":false,"role":null,"term":null,"version":null,"error":"said \"no\"","match_index":30,"lag":12,"last_contact_ms":9500}]}"#
        );
        assert_eq!(json(&view), expected);
    }

    /// Durations read as milliseconds, seconds, then minutes.
    #[test]
    fn durations() {
        assert_eq!(duration(0), "0 ms");
        assert_eq!(duration(999), "999 ms");
        assert_eq!(duration(1_000), "1.0 s");
        assert_eq!(duration(61_500), "1 min 1 s");
    }
}
