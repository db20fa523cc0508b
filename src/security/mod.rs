//! Who may reach a node's gRPC port, and as what (issue 12). A caller proves who it is by a
//! client certificate the cluster's CA signed (mTLS), or else by a bearer token; either names
//! its roles (`roles`), and each method names the roles that may call it. With neither, a
//! node is open to anyone, as before, and says so at start. The simulator runs open and in
//! plain text: TLS is only ever real sockets.

pub mod roles;
pub mod tokens;

pub use roles::{Role, Roles};
pub use tokens::TokenTable;
