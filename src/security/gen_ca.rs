//! `coolbeans gen-test-ca DIR`: a CA and the certificates a test cluster needs, in one
//! command. For trying mTLS out and for tests, not for production: the CA's key sits beside
//! the certificates, unprotected.

use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

use super::roles::{Role, ROLE_URI_PREFIX};

/// The certificates made, by file stem, with the roles each names.
pub const MADE: [(&str, &[Role]); 3] = [("node", &[Role::Peer, Role::Proxy]), ("frontend", &[Role::Proxy]), ("admin", &[Role::Admin])];

/// Writes `ca.pem` and, for each of `MADE`, `NAME.pem` and `NAME-key.pem` into `dir`; every
/// certificate names `hosts` (how nodes are dialed: a node's must name its own).
pub fn write(dir: &Path, hosts: &[String]) -> Result<String, String> {
    let fail = |e: rcgen::Error| format!("cannot make the certificates: {e}");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(fail)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "coolbeans test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(fail)?).map_err(fail)?;
    let file =
        |name: String, text: String| std::fs::write(dir.join(&name), text).map_err(|e| format!("cannot write {name} in {}: {e}", dir.display()));
    file("ca.pem".into(), ca.pem())?;
    for (stem, roles) in MADE {
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(fail)?;
        params.distinguished_name.push(DnType::CommonName, format!("coolbeans {stem}"));
        for role in roles {
            let uri = format!("{ROLE_URI_PREFIX}{}", role.name()).try_into().map_err(fail)?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        let key = KeyPair::generate().map_err(fail)?;
        file(format!("{stem}.pem"), params.signed_by(&key, &ca).map_err(fail)?.pem())?;
        file(format!("{stem}-key.pem"), key.serialize_pem())?;
    }
    Ok(format!("wrote ca.pem, node.pem (peer, frontend), frontend.pem and admin.pem, with their keys, into {}", dir.display()))
}
