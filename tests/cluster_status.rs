//! `cluster-client status` against a real 3-node cluster: asked through a follower, it prints
//! the leader's view, a row per member with the leader starred and its lag; `--json` parses
//! and says the same; with the leader gone it says so and prints what the node asked knows.
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{client_cli, cluster, temp_dir};
use coolbeans::node::version::STATE_MACHINE_VERSION;

/// The table's member rows, split on whitespace (a starred row starts with `*`).
fn rows(table: &str) -> Vec<Vec<String>> {
    let mut lines = table.lines().skip_while(|l| !l.trim_start().starts_with("ID"));
    assert!(lines.next().is_some(), "no table header in {table}");
    lines.take_while(|l| !l.starts_with("node ")).map(|l| l.split_whitespace().map(String::from).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_every_member_as_the_leader_sees_it() {
    let dir = temp_dir("cluster-status");
    let mut nodes = cluster(&dir, |_| vec![]);
    for n in &mut nodes {
        n.proc.start();
    }
    let members: Vec<(u64, SocketAddr)> = nodes.iter().map(|n| (n.id, n.addr)).collect();
    let leader = common::await_leader(&members, Duration::from_secs(15), &dir).await;
    let (follower, follower_addr) = *members.iter().find(|(id, _)| *id != leader).unwrap();

    // The table, asked of a follower: the leader's view, each row's own role and term.
    let (code, out, err) = client_cli(&["status", "--node-addr", &follower_addr.to_string()]);
    assert_eq!(code, 0, "status failed: {err}");
    assert!(out.starts_with(&format!("leader: node {leader} at ")), "first line names the leader: {out}");
    let rows = rows(&out);
    assert_eq!(rows.len(), 3, "a row per member: {out}");
    for (id, addr) in &members {
        let row =
            rows.iter().find(|r| r.contains(&id.to_string()) && r.contains(&addr.to_string())).unwrap_or_else(|| panic!("no row for {id}: {out}"));
        let starred = row[0] == "*";
        assert_eq!(starred, *id == leader, "only the leader is starred: {out}");
        let cells = &row[usize::from(starred)..];
        // ID ADDRESS MEMBER ROLE TERM VERSION MATCH LAG LAST CONTACT...
        assert_eq!(cells[2], "voter", "{out}");
        assert_eq!(cells[3], if *id == leader { "leader" } else { "follower" }, "{out}");
        assert_eq!(cells[5], STATE_MACHINE_VERSION.to_string(), "each member's state machine version: {out}");
        for number in &cells[4..8] {
            assert!(number.parse::<u64>().is_ok(), "term, version, match and lag are numbers: {out}");
        }
        let contact = cells[8..].join(" ");
        assert!(if *id == leader { contact == "-" } else { contact.ends_with(" ago") }, "last contact {contact:?}: {out}");
    }

    // The same as JSON, which parses.
    let (code, out, err) = client_cli(&["status", "--json", "--node-addr", &follower_addr.to_string()]);
    assert_eq!(code, 0, "status --json failed: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json does not parse ({e}): {out}"));
    assert_eq!(v["node_id"], follower);
    assert_eq!(v["leader_id"], leader);
    assert_eq!(v["view_of"], leader);
    assert!(v["leader_error"].is_null());
    assert_eq!(v["version"], STATE_MACHINE_VERSION, "the node asked's version: {out}");
    assert_eq!(v["voters_version"], STATE_MACHINE_VERSION, "every voter runs it: {out}");
    let json_members = v["members"].as_array().expect("members");
    assert_eq!(json_members.len(), 3);
    for m in json_members {
        let is_leader = m["id"] == leader;
        assert_eq!(m["leader"], is_leader, "{out}");
        assert_eq!(m["role"], if is_leader { "leader" } else { "follower" }, "{out}");
        assert!(m["lag"].is_u64() && m["match_index"].is_u64() && m["term"].is_u64(), "{out}");
        assert_eq!(m["version"], STATE_MACHINE_VERSION, "{out}");
        assert_eq!(m["last_contact_ms"].is_u64(), !is_leader, "the leader hears from each follower: {out}");
    }

    // The leader and the other follower gone: the survivor says so and shows its own view.
    for n in nodes.iter_mut().filter(|n| n.id != follower) {
        n.proc.kill();
    }
    let (code, out, err) = client_cli(&["status", "--node-addr", &follower_addr.to_string()]);
    assert_eq!(code, 0, "status without a leader still answers: {err}");
    assert!(out.starts_with("the leader could not be asked: "), "{out}");
    assert!(out.contains(&format!("what node {follower} knows")), "{out}");
    let rows = self::rows(&out);
    assert_eq!(rows.len(), 3, "a row per member: {out}");
    assert!(rows.iter().all(|r| r.contains(&"-".to_string())), "no match or lag without the leader: {out}");
}
