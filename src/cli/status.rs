//! `cluster-client status`: the whole cluster as the leader sees it. Asks the node given, then
//! the leader it names (only the leader knows how far each member has come), then every other
//! member at once for its own role and term (only it knows them). A member that does not
//! answer still has its row; a leader that does not answer leaves the node asked's view.

mod render;
mod view;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::api::{Empty, NodeStatusResponse};
use crate::security::Dialer;
pub use render::{json, role_name, text};
pub use view::{assemble, ClusterView};

/// How long the node asked and the leader may take: as long as any cluster call.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// How long each other member may take: one that is down should not hold the table up long.
const MEMBER_TIMEOUT: Duration = Duration::from_secs(1);

/// The cluster as `addr` and the leader it names see it; an error only when `addr` itself
/// does not answer.
pub async fn gather(dialer: &Dialer, addr: &str) -> Result<ClusterView, String> {
    let asked = ask(dialer, addr.to_string(), ASK_TIMEOUT).await?;
    let leader = leader_of(dialer, &asked).await;
    let source = leader.as_ref().unwrap_or(&asked);
    let mut answers = ask_members(dialer, source, &[&asked, leader.as_ref().unwrap_or(&asked)]).await;
    answers.insert(asked.node_id, Ok(asked.clone()));
    if let Ok(leader) = &leader {
        answers.insert(leader.node_id, Ok(leader.clone()));
    }
    Ok(view::assemble(asked, leader, &answers))
}

/// One node's status, within `timeout` to connect and again for the call.
async fn ask(dialer: &Dialer, addr: String, timeout: Duration) -> Result<NodeStatusResponse, String> {
    let mut client = super::client::connect_within(dialer, &addr, timeout, timeout).await?;
    client.status(Empty {}).await.map(|r| r.into_inner()).map_err(|s| format!("{addr}: {}", super::client::refused(&s)))
}

/// The leader's own status, or why it cannot be had.
async fn leader_of(dialer: &Dialer, asked: &NodeStatusResponse) -> Result<NodeStatusResponse, String> {
    if view::leads(asked) {
        return Ok(asked.clone());
    }
    let (id, asked_id) = (asked.leader_id, asked.node_id);
    if id == 0 {
        return Err(format!("node {asked_id} knows of no leader"));
    }
    let addr = asked.members.iter().find(|m| m.node_id == id).map(|m| m.addr.clone()).unwrap_or_default();
    if addr.is_empty() {
        return Err(format!("node {asked_id} knows no address for the leader, node {id}"));
    }
    let leader = ask(dialer, addr.clone(), ASK_TIMEOUT).await.map_err(|e| format!("the leader, node {id}: {e}"))?;
    if !view::leads(&leader) {
        return Err(format!("node {id} at {addr}, the leader node {asked_id} names, does not lead"));
    }
    Ok(leader)
}

/// The status of each member of `source` but those already `known`, all asked at once.
async fn ask_members(
    dialer: &Dialer,
    source: &NodeStatusResponse,
    known: &[&NodeStatusResponse],
) -> BTreeMap<u64, Result<NodeStatusResponse, String>> {
    let mut asks = Vec::new();
    for m in &source.members {
        if known.iter().any(|k| k.node_id == m.node_id) {
            continue;
        }
        let (id, addr, dialer) = (m.node_id, m.addr.clone(), dialer.clone());
        asks.push((
            id,
            tokio::spawn(async move {
                if addr.is_empty() {
                    return Err("no address known".to_string());
                }
                ask(&dialer, addr, MEMBER_TIMEOUT).await
            }),
        ));
    }
    let mut answers = BTreeMap::new();
    for (id, ask) in asks {
        answers.insert(id, ask.await.unwrap_or_else(|e| Err(format!("the ask failed: {e}"))));
    }
    answers
}
