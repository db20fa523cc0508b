//! Who may reach a node's gRPC port, and as what. A caller proves who it is by a
//! client certificate the cluster's CA signed (mTLS), or else by a bearer token; either names
//! its roles (`roles`), and each method names the roles that may call it. With neither, a
//! node is open to anyone, as before, and says so at start. The simulator runs open and in
//! plain text: TLS is only ever real sockets.

pub mod dial;
#[cfg(not(madsim))]
pub mod gen_ca;
#[cfg(not(madsim))]
pub(crate) mod guard;
pub mod roles;
#[cfg(not(madsim))]
pub mod tls;
pub mod tokens;

use std::sync::{Arc, RwLock};

pub use dial::Dialer;
pub use roles::{Role, Roles};
pub use tokens::TokenTable;

/// A value replaced whole when its files are read again (on SIGHUP); each reader takes the
/// one current when it reads, so a connection or call already made keeps what it had.
pub struct Swap<T>(RwLock<Arc<T>>);

impl<T> Swap<T> {
    pub fn new(value: T) -> Arc<Swap<T>> {
        Arc::new(Swap(RwLock::new(Arc::new(value))))
    }

    pub fn get(&self) -> Arc<T> {
        // A writer that panicked left a whole value behind: a swap is one assignment.
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(value);
    }
}

/// How a node's gRPC server tells its callers' roles.
#[derive(Clone, Default)]
pub enum Callers {
    /// Everyone holds every role: no flag was given.
    #[default]
    Open,
    /// From the bearer token in each call's metadata.
    Tokens(Arc<Swap<TokenTable>>),
    /// From the client certificate of the connection, which the handshake verified.
    #[cfg(not(madsim))]
    Tls(Arc<Swap<tokio_rustls::rustls::ServerConfig>>),
}

impl Callers {
    /// The TLS configuration connections are accepted with, if any.
    #[cfg(not(madsim))]
    pub(crate) fn server_tls(&self) -> Option<Arc<Swap<tokio_rustls::rustls::ServerConfig>>> {
        match self {
            Callers::Tls(config) => Some(config.clone()),
            _ => None,
        }
    }
}

/// What a connection tells of its caller, as the gRPC server hands it to each call.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub addr: Option<std::net::SocketAddr>,
    /// The roles the verified client certificate names; None on a plain-text connection.
    pub cert_roles: Option<Roles>,
}
