//! Bearer tokens, for a cluster without mTLS: the node's file names each token's roles, and a
//! caller sends its token in the call's metadata (`authorization: Bearer TOKEN`).

use std::path::Path;

use super::roles::{Role, Roles};

/// The metadata key a token rides in.
pub const AUTHORIZATION: &str = "authorization";
const BEARER: &str = "Bearer ";

/// The tokens a node accepts, each with its roles.
#[derive(Clone, Default)]
pub struct TokenTable {
    tokens: Vec<(String, Roles)>,
}

impl TokenTable {
    /// Parses a token file: one `ROLE[,ROLE...] TOKEN` a line; blank lines and `#` comments
    /// are skipped. A token named on several lines holds all their roles.
    pub fn parse(text: &str) -> Result<TokenTable, String> {
        let mut table = TokenTable::default();
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (names, token) = line.split_once(char::is_whitespace).ok_or(format!("line {number}: expected `ROLE TOKEN`"))?;
            let token = token.trim();
            if token.is_empty() || token.contains(char::is_whitespace) {
                return Err(format!("line {number}: expected `ROLE TOKEN`, the token without spaces"));
            }
            let mut roles = Roles::NONE;
            for name in names.split(',') {
                let role = Role::parse(name).ok_or(format!("line {number}: unknown role {name:?} (peer, frontend or admin)"))?;
                roles = roles.with(role);
            }
            table.add(token, roles);
        }
        Ok(table)
    }

    pub fn load(path: &Path) -> Result<TokenTable, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the tokens in {}: {e}", path.display()))?;
        TokenTable::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn add(&mut self, token: &str, roles: Roles) {
        match self.tokens.iter_mut().find(|(t, _)| t == token) {
            Some((_, held)) => *held = held.union(roles),
            None => self.tokens.push((token.to_string(), roles)),
        }
    }

    /// The roles of the token in an `authorization` value; none for a missing or unknown
    /// token. Every token is compared in full, so the time taken tells nothing of a match.
    pub fn roles(&self, authorization: Option<&str>) -> Roles {
        let Some(token) = authorization.and_then(|a| a.strip_prefix(BEARER)) else { return Roles::NONE };
        let found = self.tokens.iter().filter(|(t, _)| same(t.as_bytes(), token.as_bytes())).map(|(_, r)| *r);
        found.fold(Roles::NONE, Roles::union)
    }
}

/// Equal bytes, compared without an early exit.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// The value of the `authorization` metadata that carries `token`.
pub fn bearer(token: &str) -> String {
    format!("{BEARER}{token}")
}

/// The token in a caller's token file: its one line, trimmed.
pub fn read_own_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the token in {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(format!("{} should hold one token, without spaces", path.display()));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_roles() {
        let table = TokenTable::parse("# the cluster's tokens\npeer,frontend n0de\n\nadmin 4dm1n\nfrontend fr0nt\nadmin fr0nt\n").expect("parses");
        assert_eq!(table.roles(Some("Bearer n0de")).to_string(), "peer,frontend");
        assert_eq!(table.roles(Some("Bearer 4dm1n")).to_string(), "admin");
        assert_eq!(table.roles(Some("Bearer fr0nt")).to_string(), "frontend,admin");
        assert_eq!(table.roles(Some("Bearer n0d")), Roles::NONE);
        assert_eq!(table.roles(Some("n0de")), Roles::NONE);
        assert_eq!(table.roles(None), Roles::NONE);
    }

    #[test]
    fn bad_lines_are_refused_with_their_number() {
        assert_eq!(TokenTable::parse("admin\n").err().expect("no token"), "line 1: expected `ROLE TOKEN`");
        let unknown = TokenTable::parse("\nroot s3cret\n").err().expect("no such role");
        assert!(unknown.starts_with("line 2: unknown role \"root\""), "{unknown}");
    }
}
