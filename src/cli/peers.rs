//! Parsing `--peers 1=HOST:PORT,2=HOST:PORT`.

use std::collections::BTreeMap;

/// Members by node id. Ids are positive and unique; addresses are HOST:PORT.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut peers = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part.split_once('=').ok_or_else(|| format!("peer {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("peer id {id:?} is not a positive integer"))?;
        if id == 0 {
            return Err("peer id 0 is not allowed: ids start at 1".into());
        }
        let addr = addr.trim();
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            return Err(format!("peer address {addr:?} is not HOST:PORT"));
        }
        if peers.insert(id, addr.to_string()).is_some() {
            return Err(format!("peer id {id} is listed twice"));
        }
    }
    if peers.is_empty() {
        return Err("--peers lists no peer".into());
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed lists parse; each kind of mistake is an error that says what is wrong.
    #[test]
    fn parses_and_rejects() {
        let p = parse_peers("1=127.0.0.1:7001, 2=localhost:7002,3=[::1]:7003").unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[&3], "[::1]:7003");
        assert!(parse_peers("").unwrap_err().contains("no peer"));
        assert!(parse_peers("0=a:1").unwrap_err().contains("id 0"));
        assert!(parse_peers("x=a:1").unwrap_err().contains("positive integer"));
        assert!(parse_peers("1=a").unwrap_err().contains("HOST:PORT"));
        assert!(parse_peers("1=a:1,1=b:2").unwrap_err().contains("twice"));
    }
}
