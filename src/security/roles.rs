//! What each caller may do. A role comes from the caller's certificate (mTLS) or bearer token;
//! each gRPC method names the roles that may call it. Pure: no I/O, no transport.

use std::fmt;

/// A caller's role. One certificate or token may hold several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Another node: raft traffic, and asking to join (a node started with --join asks for
    /// itself).
    Peer,
    /// A proxy: the job RPCs. Named `frontend` in token files and certificates, which keep
    /// that name.
    Proxy,
    /// An operator: Join, Leave and Snapshot.
    Admin,
}

impl Role {
    const ALL: [Role; 3] = [Role::Peer, Role::Proxy, Role::Admin];

    /// The name in token files and certificates (`coolbeans:role:NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Peer => "peer",
            Role::Proxy => "frontend",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The prefix of a certificate's SAN URI that names a role: `coolbeans:role:admin`.
pub const ROLE_URI_PREFIX: &str = "coolbeans:role:";

/// A set of roles.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    pub const NONE: Roles = Roles(0);
    /// Every role: a node with no authentication configured lets anyone do anything.
    pub const ALL: Roles = Roles(0b111);

    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |bits, r| bits | r.bit()))
    }

    pub fn with(self, role: Role) -> Roles {
        Roles(self.0 | role.bit())
    }

    pub fn union(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    pub fn holds_any(self, other: Roles) -> bool {
        self.0 & other.0 != 0
    }

    /// The roles a certificate's SAN URIs name; URIs that name none are ignored.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Roles {
        let named = uris.into_iter().filter_map(|uri| uri.strip_prefix(ROLE_URI_PREFIX)).filter_map(Role::parse);
        named.fold(Roles::NONE, Roles::with)
    }
}

impl fmt::Debug for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = Role::ALL.into_iter().filter(|r| self.holds_any(Roles::of(&[*r]))).map(Role::name).collect();
        match names.is_empty() {
            true => f.write_str("no role"),
            false => f.write_str(&names.join(",")),
        }
    }
}

/// The roles that may call the gRPC method at `path` (`/package.Service/Method`). A method
/// not named here (reflection, health, anything added later) is no one's until it is.
pub fn allowed(path: &str) -> Roles {
    let (service, method) = path.trim_start_matches('/').split_once('/').unwrap_or((path, ""));
    match (service, method) {
        ("coolbeans.api.v1.RaftTransport", _) => Roles::of(&[Role::Peer]),
        // Jobs, and the web console's reads of them (Browse).
        ("coolbeans.api.v1.JobStateMachine" | "coolbeans.api.v1.Forwarding" | "coolbeans.api.v1.Browse", _) => Roles::of(&[Role::Proxy]),
        ("coolbeans.api.v1.Cluster", "Join") => Roles::of(&[Role::Admin, Role::Peer]),
        ("coolbeans.api.v1.Cluster", "Leave" | "Snapshot") => Roles::of(&[Role::Admin]),
        // Who leads and how far each member is: what every caller needs to find its way.
        ("coolbeans.api.v1.Cluster", "IsNodeLeader" | "Status") => Roles::ALL,
        _ => Roles::NONE,
    }
}

/// Why a caller holding `held` may not call `path`, or None if it may.
pub fn refusal(path: &str, held: Roles) -> Option<String> {
    let needed = allowed(path);
    match held.holds_any(needed) {
        true => None,
        false if needed == Roles::NONE => Some(format!("{path} is not open to any role")),
        false => Some(format!("{path} needs the role {needed}; the caller holds {held}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each role reaches its own methods and no other's.
    #[test]
    fn each_role_calls_its_own_methods_only() {
        let [peer, proxy, admin] = [Role::Peer, Role::Proxy, Role::Admin].map(|r| Roles::of(&[r]));
        assert!(refusal("/coolbeans.api.v1.RaftTransport/Stream", peer).is_none());
        assert!(refusal("/coolbeans.api.v1.RaftTransport/Stream", admin).is_some());
        assert!(refusal("/coolbeans.api.v1.JobStateMachine/Put", proxy).is_none());
        assert!(refusal("/coolbeans.api.v1.Forwarding/Forward", peer).is_some());
        assert!(refusal("/coolbeans.api.v1.Browse/Jobs", proxy).is_none());
        assert!(refusal("/coolbeans.api.v1.Browse/Tubes", peer).is_some());
        let leave = refusal("/coolbeans.api.v1.Cluster/Leave", proxy).expect("a proxy may not Leave");
        assert_eq!(leave, "/coolbeans.api.v1.Cluster/Leave needs the role admin; the caller holds frontend");
        assert!(refusal("/coolbeans.api.v1.Cluster/Leave", admin).is_none());
        assert!(refusal("/coolbeans.api.v1.Cluster/Join", peer).is_none());
        assert!(refusal("/coolbeans.api.v1.Cluster/Status", proxy).is_none());
        assert!(refusal("/coolbeans.api.v1.Cluster/Status", Roles::NONE).is_some());
        assert!(refusal("/grpc.health.v1.Health/Check", Roles::ALL).is_some());
    }

    #[test]
    fn roles_come_from_uris_with_the_prefix() {
        let roles = Roles::from_uris(["coolbeans:role:peer", "https://example.com", "coolbeans:role:nobody", "coolbeans:role:frontend"]);
        assert_eq!(roles.to_string(), "peer,frontend");
        assert_eq!(Roles::from_uris([]).to_string(), "no role");
    }
}
