//! mTLS on the gRPC port: rustls configurations made from PEM files (the node's certificate
//! chain, its key, and the CA that signs every member's), for the server and for dialing out
//! alike; and the roles a verified client certificate names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};

use super::roles::Roles;

/// The PEM files of `--tls-cert`, `--tls-key` and `--tls-ca`.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// Both ends' configurations made from one set of files.
pub struct TlsConfigs {
    pub server: ServerConfig,
    pub client: ClientConfig,
}

/// HTTP/2 named in the handshake, as gRPC over TLS expects.
const ALPN_H2: &[u8] = b"h2";

impl TlsFiles {
    /// Reads the files and makes both configurations: the server asks every caller for a
    /// certificate the CA signed; the client presents ours and trusts only the CA.
    pub fn load(&self) -> Result<TlsConfigs, String> {
        let (chain, key) = (read_chain(&self.cert)?, read_key(&self.key)?);
        let roots = self.roots()?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("the CA in {} cannot verify clients: {e}", self.ca.display()))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_client_cert_verifier(verifier).with_single_cert(chain.clone(), key.clone_key()))
            .map_err(|e| self.unfit(e))?;
        server.alpn_protocols = vec![ALPN_H2.to_vec()];
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_root_certificates(roots).with_client_auth_cert(chain, key))
            .map_err(|e| self.unfit(e))?;
        client.alpn_protocols = vec![ALPN_H2.to_vec()];
        Ok(TlsConfigs { server, client })
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, String> {
        let mut roots = RootCertStore::empty();
        for cert in read_chain(&self.ca)? {
            roots.add(cert).map_err(|e| format!("{} is not a usable CA certificate: {e}", self.ca.display()))?;
        }
        Ok(Arc::new(roots))
    }

    fn unfit(&self, e: rustls::Error) -> String {
        format!("the certificate in {} and key in {} do not make a TLS identity: {e}", self.cert.display(), self.key.display())
    }
}

/// The certificates of a PEM file, at least one.
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the certificates in {}: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(chain)
}

/// The private key of a PEM file.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("cannot read a private key in {}: {e}", path.display()))
}

/// The roles a client certificate names in its SAN URIs (`coolbeans:role:NAME`). Only called
/// on a certificate rustls verified; one that does not parse holds no role.
pub fn roles_of(cert: &CertificateDer<'_>) -> Roles {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else { return Roles::NONE };
    let Ok(Some(san)) = parsed.subject_alternative_name() else { return Roles::NONE };
    let uris = san.value.general_names.iter().filter_map(|name| match name {
        x509_parser::extensions::GeneralName::URI(uri) => Some(*uri),
        _ => None,
    });
    Roles::from_uris(uris)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `gen-test-ca`'s certificates load as both ends' configurations, and each names the
    /// roles it was made with; a missing file is named in the error.
    #[test]
    fn test_ca_certificates_load_and_name_their_roles() {
        let dir = std::env::temp_dir().join(format!("coolbeans-mtls-{}", std::process::id()));
        super::super::gen_ca::write(&dir, &["localhost".into()]).expect("writes");
        for (name, roles) in [("node", "peer,frontend"), ("frontend", "frontend"), ("admin", "admin")] {
            let files = TlsFiles { cert: dir.join(format!("{name}.pem")), key: dir.join(format!("{name}-key.pem")), ca: dir.join("ca.pem") };
            files.load().expect("a TLS identity");
            assert_eq!(roles_of(&read_chain(&files.cert).expect("reads")[0]).to_string(), roles);
        }
        let missing = TlsFiles { cert: dir.join("node.pem"), key: dir.join("node-key.pem"), ca: dir.join("nothing.pem") };
        let error = missing.load().err().expect("no CA");
        assert!(error.contains("nothing.pem"), "{error}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
