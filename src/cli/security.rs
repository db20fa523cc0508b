//! The gRPC security flags and what they make: how this process dials nodes, how a
//! node tells its callers' roles, and the reading of their files again on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use tonic::metadata::AsciiMetadataValue;

use crate::security::tokens::{bearer, read_own_token};
use crate::security::{Callers, Dialer, Role, Roles, Swap, TokenTable};

/// How this process proves itself to nodes (every subcommand that dials one).
#[derive(Args, Debug, Clone, Default)]
pub struct DialArgs {
    /// mTLS on gRPC: this PEM certificate chain, with --tls-key and --tls-ca. Its SAN URIs
    /// `coolbeans:role:peer`, `coolbeans:role:frontend` and `coolbeans:role:admin` name the
    /// roles it holds; a node's must also name the host it is dialed at.
    #[arg(long, value_name = "PATH", requires_all = ["tls_key", "tls_ca"], global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    /// The PEM certificate of the CA that signs every member's: only what it signed connects.
    #[arg(long, value_name = "PATH", requires = "tls_cert", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Without mTLS: a file holding the bearer token sent with every gRPC call, whose roles
    /// the nodes' --auth-tokens-file names.
    #[arg(long, value_name = "PATH", conflicts_with = "tls_cert", global = true)]
    pub auth_token_file: Option<PathBuf>,
}

/// A file read again on SIGHUP, and where its contents go (the simulator sends no SIGHUP).
#[cfg_attr(madsim, allow(dead_code))]
enum Reload {
    #[cfg(not(madsim))]
    Tls(crate::security::tls::TlsFiles, Arc<Swap<tokio_rustls::rustls::ServerConfig>>, Arc<Swap<tokio_rustls::rustls::ClientConfig>>),
    Tokens(PathBuf, Arc<Swap<TokenTable>>),
    Token(PathBuf, Arc<Swap<AsciiMetadataValue>>),
}

/// What the flags made.
pub struct Security {
    pub dialer: Dialer,
    /// How a node's server tells its callers' roles (Open for a process that serves none).
    pub callers: Callers,
    reloads: Vec<Reload>,
}

impl DialArgs {
    /// Reads the files now (a bad one stops the start); `tokens_file` is a node's
    /// --auth-tokens-file.
    pub fn load(&self, tokens_file: Option<&Path>) -> Result<Security, String> {
        let mut security = Security { dialer: Dialer::default(), callers: Callers::Open, reloads: Vec::new() };
        if let Some(path) = &self.auth_token_file {
            let token = Swap::new(token_value(path)?);
            security.dialer = security.dialer.with_token(token.clone());
            security.reloads.push(Reload::Token(path.clone(), token));
        }
        if let Some(path) = tokens_file {
            let table = Swap::new(TokenTable::load(path)?);
            security.callers = Callers::Tokens(table.clone());
            security.reloads.push(Reload::Tokens(path.to_path_buf(), table));
        }
        if let (Some(cert), Some(key), Some(ca)) = (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            self.load_tls(&mut security, (cert, key, ca))?;
        }
        Ok(security)
    }

    /// As `load`, for a node, whose own certificate or token must hold the peer role: the
    /// other nodes would refuse its raft traffic otherwise.
    pub fn load_node(&self, tokens_file: Option<&Path>) -> Result<Security, String> {
        let security = self.load(tokens_file)?;
        let (what, roles) = match (&security.callers, tokens_file, &self.auth_token_file) {
            (Callers::Tokens(table), Some(_), Some(own)) => {
                ("the token of --auth-token-file", table.get().roles(Some(&bearer(&read_own_token(own)?))))
            }
            (Callers::Tokens(_), _, _) => {
                return Err("--auth-tokens-file needs --auth-token-file: the node's own token, which its peers take as a peer's".into())
            }
            _ => match &self.tls_cert {
                Some(cert) => ("the certificate of --tls-cert", self.cert_roles(cert)?),
                None => return Ok(security),
            },
        };
        match roles.holds_any(Roles::of(&[Role::Peer])) {
            true => Ok(security),
            false => Err(format!("{what} holds the roles {roles}, not peer: the other nodes would refuse its raft traffic")),
        }
    }

    #[cfg(not(madsim))]
    fn cert_roles(&self, cert: &Path) -> Result<Roles, String> {
        Ok(crate::security::tls::read_chain(cert)?.first().map(crate::security::tls::roles_of).unwrap_or_default())
    }

    #[cfg(madsim)]
    fn cert_roles(&self, _: &Path) -> Result<Roles, String> {
        Err("TLS is not simulated".into())
    }

    #[cfg(not(madsim))]
    fn load_tls(&self, security: &mut Security, (cert, key, ca): (&PathBuf, &PathBuf, &PathBuf)) -> Result<(), String> {
        let files = crate::security::tls::TlsFiles { cert: cert.clone(), key: key.clone(), ca: ca.clone() };
        let configs = files.load()?;
        let (server, client) = (Swap::new(configs.server), Swap::new(configs.client));
        security.dialer = security.dialer.clone().with_tls(client.clone());
        security.callers = Callers::Tls(server.clone());
        security.reloads.push(Reload::Tls(files, server, client));
        Ok(())
    }

    #[cfg(madsim)]
    fn load_tls(&self, _: &mut Security, _: (&PathBuf, &PathBuf, &PathBuf)) -> Result<(), String> {
        Err("TLS is not simulated".into())
    }
}

/// The `authorization` value of the token in `path`.
fn token_value(path: &Path) -> Result<AsciiMetadataValue, String> {
    bearer(&read_own_token(path)?).parse().map_err(|_| format!("{} holds a token that is not printable ASCII", path.display()))
}

impl Security {
    /// Reads every file again at each SIGHUP; a file that no longer reads is logged and the
    /// last good contents kept. Connections already made keep what they were made with.
    pub fn reload_on_sighup(&mut self) {
        #[cfg(not(madsim))]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hangups) = signal(SignalKind::hangup()) else {
                return tracing::warn!("cannot catch SIGHUP; certificates and tokens will not reload");
            };
            let reloads = std::mem::take(&mut self.reloads);
            tokio::spawn(async move {
                while hangups.recv().await.is_some() {
                    reloads.iter().for_each(Reload::run);
                }
            });
        }
    }

    /// The warn line of a node whose gRPC port is plain text (none when it is mTLS).
    pub fn warn_if_plain(&self, listen: &std::net::SocketAddr) {
        match self.callers {
            Callers::Open => tracing::warn!(
                %listen,
                "gRPC is plain text and open: anyone who reaches it may join, leave, send raft messages and read or write \
                 every job (see --tls-cert, --auth-tokens-file)"
            ),
            Callers::Tokens(_) => {
                tracing::warn!(%listen, "gRPC is plain text: tokens and jobs cross the network unencrypted (see --tls-cert)")
            }
            #[cfg(not(madsim))]
            Callers::Tls(_) => tracing::info!(%listen, "gRPC is mTLS: callers need a certificate the CA signed"),
        }
    }
}

impl Reload {
    #[cfg_attr(madsim, allow(dead_code))]
    fn run(&self) {
        let outcome = match self {
            #[cfg(not(madsim))]
            Reload::Tls(files, server, client) => files.load().map(|configs| {
                server.set(configs.server);
                client.set(configs.client);
                files.cert.clone()
            }),
            Reload::Tokens(path, table) => TokenTable::load(path).map(|t| table.set(t)).map(|()| path.clone()),
            Reload::Token(path, token) => token_value(path).map(|t| token.set(t)).map(|()| path.clone()),
        };
        match outcome {
            Ok(path) => tracing::info!(file = %path.display(), "reloaded on SIGHUP"),
            Err(e) => tracing::warn!(error = %e, "not reloaded on SIGHUP; the last good files stay in use"),
        }
    }
}
