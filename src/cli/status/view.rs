//! The cluster as `cluster-client status` shows it, put together from the nodes' answers.
//! Pure: answers in, rows out.

use std::collections::BTreeMap;

use crate::api::{NodeRole, NodeStatusResponse};

/// One member's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub id: u64,
    pub addr: String,
    /// A voter, or a learner still catching up.
    pub voter: bool,
    /// The member the source node takes for the leader.
    pub leader: bool,
    /// The member's own word on its role, term and state machine version (only it knows
    /// them), or why it gave none.
    pub own: Result<(NodeRole, u64, u32), String>,
    /// The highest index the member acknowledged holding, as the leader knows it: none when
    /// the source is not the leader, which does not track it.
    pub match_index: Option<u64>,
    /// How many entries of the leader's log the member has not acknowledged.
    pub lag: Option<u64>,
    /// Milliseconds since the source node last heard from the member: none for the source
    /// itself, or a member it has not heard from since it started.
    pub last_contact_ms: Option<u64>,
}

/// What `status` prints: the rows come from one node, the source, and the role and term of
/// each from the member itself.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterView {
    /// The node asked, as it answered: the JSON's top-level keys are its own (as they were
    /// before the table).
    pub asked: NodeStatusResponse,
    /// The node whose membership, progress and contacts the rows show: the leader, or the
    /// node asked when the leader could not be had.
    pub source: NodeStatusResponse,
    /// Why the rows are not the leader's, when they are not.
    pub leader_missing: Option<String>,
    pub members: Vec<MemberRow>,
    /// Each member's own answer, or why it gave none (the console shows their indexes).
    pub answers: BTreeMap<u64, Result<NodeStatusResponse, String>>,
}

/// Whether a node's answer says it leads (by its role, or by naming itself the leader for a
/// node too old to give its role).
pub fn leads(s: &NodeStatusResponse) -> bool {
    match s.role() {
        NodeRole::Unknown => s.leader_id != 0 && s.leader_id == s.node_id,
        role => role == NodeRole::Leader,
    }
}

/// The rows as the leader gives them (or the node asked, with why not the leader), with each
/// member's own answer from `answers` (by id; a member missing there was not asked).
pub fn assemble(
    asked: NodeStatusResponse,
    leader: Result<NodeStatusResponse, String>,
    answers: &BTreeMap<u64, Result<NodeStatusResponse, String>>,
) -> ClusterView {
    let (source, leader_missing) = match leader {
        Ok(leader) => (leader, None),
        Err(why) => (asked.clone(), Some(why)),
    };
    let progress_known = leads(&source);
    let members = source
        .members
        .iter()
        .map(|m| {
            let own = match answers.get(&m.node_id) {
                Some(Ok(s)) => Ok((own_role(s), s.term, version_of(s))),
                Some(Err(why)) => Err(why.clone()),
                None => Err("not asked".to_string()),
            };
            let match_index = progress_known.then_some(m.match_index);
            MemberRow {
                id: m.node_id,
                addr: m.addr.clone(),
                voter: m.voter,
                leader: m.node_id == source.leader_id,
                own,
                match_index,
                lag: match_index.map(|matched| source.last_index.saturating_sub(matched)),
                last_contact_ms: m.last_contact_ms,
            }
        })
        .collect();
    ClusterView { asked, source, leader_missing, members, answers: answers.clone() }
}

/// The state machine version a node runs: one too old to say runs the first, version 1.
pub fn version_of(s: &NodeStatusResponse) -> u32 {
    crate::node::version::written_with(s.version)
}

/// The highest version every voter runs, as the node says (one too old to say knows of none
/// but version 1).
pub fn voters_version_of(s: &NodeStatusResponse) -> u32 {
    crate::node::version::written_with(s.voters_version)
}

/// A node's role as it says, or as its naming itself leader tells for a node too old to say.
fn own_role(s: &NodeStatusResponse) -> NodeRole {
    match s.role() {
        NodeRole::Unknown if leads(s) => NodeRole::Leader,
        role => role,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::api::MemberProto;

    pub fn member(id: u64, voter: bool, match_index: u64, last_contact_ms: Option<u64>) -> MemberProto {
        MemberProto { node_id: id, addr: format!("127.0.0.1:700{id}"), voter, match_index, last_contact_ms }
    }

    /// A node's answer: `leader_id` is the leader it knows, `role` its own.
    pub fn answer(id: u64, leader_id: u64, role: NodeRole, term: u64, members: Vec<MemberProto>) -> NodeStatusResponse {
        NodeStatusResponse {
            node_id: id,
            leader_id,
            term,
            commit_index: 40,
            applied_index: 40,
            members,
            snapshot_index: 0,
            role: role as i32,
            last_index: 42,
            version: 1,
            voters_version: 1,
        }
    }

    /// Three members as leader 1 sees them: 2 caught up, 3 a learner behind and unreachable.
    pub fn three_members() -> Vec<MemberProto> {
        vec![member(1, true, 42, None), member(2, true, 41, Some(120)), member(3, false, 30, Some(9_500))]
    }

    /// With the leader's answer, the rows carry its match indexes, lags from its last index and
    /// contacts, each member's own role and term, and the leader marked.
    #[test]
    fn rows_from_the_leader() {
        let asked = answer(2, 1, NodeRole::Follower, 5, vec![]);
        let leader = answer(1, 1, NodeRole::Leader, 5, three_members());
        let answers = BTreeMap::from([(1, Ok(leader.clone())), (2, Ok(asked.clone())), (3, Err("cannot reach".to_string()))]);
        let view = assemble(asked, Ok(leader), &answers);
        assert_eq!(view.leader_missing, None);
        let rows: Vec<_> = view.members.iter().map(|r| (r.id, r.leader, r.own.clone(), r.match_index, r.lag)).collect();
        assert_eq!(
            rows,
            [
                (1, true, Ok((NodeRole::Leader, 5, 1)), Some(42), Some(0)),
                (2, false, Ok((NodeRole::Follower, 5, 1)), Some(41), Some(1)),
                (3, false, Err("cannot reach".to_string()), Some(30), Some(12)),
            ]
        );
        assert!(!view.members[2].voter);
    }

    /// Without the leader, the rows are the node asked's: no progress (it does not track it),
    /// its contacts, and why the leader is missing.
    #[test]
    fn rows_from_a_follower_when_the_leader_is_missing() {
        let members = vec![member(1, true, 0, Some(4_000)), member(2, true, 0, None)];
        let asked = answer(2, 1, NodeRole::Follower, 5, members);
        let answers = BTreeMap::from([(2, Ok(asked.clone()))]);
        let view = assemble(asked, Err("the leader cannot be reached".into()), &answers);
        assert_eq!(view.leader_missing.as_deref(), Some("the leader cannot be reached"));
        assert_eq!(view.source.node_id, 2);
        assert!(view.members.iter().all(|r| r.match_index.is_none() && r.lag.is_none()));
        assert!(view.members[0].leader);
        assert_eq!(view.members[0].own, Err("not asked".to_string()));
        assert_eq!(view.members[0].last_contact_ms, Some(4_000));
    }

    /// A node too old to give its role still leads if it names itself the leader.
    #[test]
    fn a_node_without_a_role_leads_by_naming_itself() {
        let old = answer(1, 1, NodeRole::Unknown, 3, vec![]);
        assert!(leads(&old));
        assert_eq!(own_role(&old), NodeRole::Leader);
        assert!(!leads(&answer(2, 1, NodeRole::Unknown, 3, vec![])));
    }
}
