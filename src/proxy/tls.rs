//! TLS on the beanstalkd port (tokio-rustls, ring: no OpenSSL). beanstalkd has none and its
//! users put stunnel in front; a client that speaks TLS connects to us directly, and a stunnel
//! setup keeps working against a plain port. The simulator runs in plain text: there is no
//! acceptor to make there.

#[cfg(not(madsim))]
pub use real::{load, Acceptor, HANDSHAKE_TIMEOUT};

/// No TLS in the simulator: a value of this type cannot exist.
#[cfg(madsim)]
pub enum Acceptor {}

#[cfg(madsim)]
pub fn load(_cert: &std::path::Path, _key: &std::path::Path) -> Result<Acceptor, String> {
    Err("TLS is not simulated".into())
}

#[cfg(not(madsim))]
mod real {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio_rustls::rustls::{self, ServerConfig};

    pub type Acceptor = tokio_rustls::TlsAcceptor;

    /// How long a new connection has to finish its handshake: one that sends nothing (or plain
    /// text, which is never a ClientHello) holds a permit no longer.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

    /// The acceptor for a certificate chain and its private key, PEM files both.
    pub fn load(cert: &Path, key: &Path) -> Result<Acceptor, String> {
        let chain = crate::security::tls::read_chain(cert)?;
        let key_der = crate::security::tls::read_key(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key_der))
            .map_err(|e| format!("the certificate in {} and key in {} do not make a TLS server: {e}", cert.display(), key.display()))?;
        Ok(Acceptor::from(Arc::new(config)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn missing_or_mismatched_files_are_refused_naming_them() {
            let dir = std::env::temp_dir().join(format!("coolbeans-tls-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("mkdir");
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let missing = load(&cert, &key).err().expect("no files");
            assert!(missing.contains("cert.pem"), "{missing}");
            let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
            std::fs::write(&cert, made.cert.pem()).expect("write cert");
            std::fs::write(&key, "not a key").expect("write key");
            let bad_key = load(&cert, &key).err().expect("no key");
            assert!(bad_key.contains("key.pem"), "{bad_key}");
            let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
            std::fs::write(&key, other.signing_key.serialize_pem()).expect("write key");
            let mismatched = load(&cert, &key).err().expect("the key is another certificate's");
            assert!(mismatched.contains("do not make a TLS server"), "{mismatched}");
            std::fs::write(&key, made.signing_key.serialize_pem()).expect("write key");
            load(&cert, &key).expect("a matching pair");
            std::fs::remove_dir_all(&dir).expect("clean up");
        }
    }
}
