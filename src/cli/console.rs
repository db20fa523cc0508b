//! `--http-listen` and `--http-admin-token-file`: the web console, for `serve`,
//! `cluster-node` and `coolbeans beanstalkd`.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct ConsoleArgs {
    /// Serve the web console at http://HOST:PORT/ (off unless given). A port alone binds
    /// 127.0.0.1: the console is reachable from elsewhere only when a host says so.
    #[arg(long, value_name = "[HOST:]PORT")]
    pub http_listen: Option<String>,
    /// A file holding the token that allows the console's actions (pause, kick, delete,
    /// move), given as `Authorization: Bearer TOKEN`. Without it the console is read-only.
    #[arg(long, value_name = "PATH", requires = "http_listen")]
    pub http_admin_token_file: Option<PathBuf>,
}

/// A console port bound and its token read, before the node starts: a port in use or a bad
/// token file fails the start.
#[cfg(not(madsim))]
pub type Bound = crate::console::BoundConsole;
#[cfg(madsim)]
pub enum Bound {}

impl ConsoleArgs {
    pub async fn bind(&self) -> Result<Option<Bound>, String> {
        let Some(listen) = &self.http_listen else { return Ok(None) };
        let token = self.http_admin_token_file.as_ref().map(read_token).transpose()?;
        #[cfg(not(madsim))]
        return crate::console::BoundConsole::bind(listen, token).await.map(Some);
        #[cfg(madsim)]
        {
            let _ = (listen, token);
            Err("the web console is not built into the simulator".into())
        }
    }
}

impl Bound {
    /// Serves the console of `node` (at `grpc`'s address, dialed with its credentials; none
    /// in `serve`), its actions written through `upstream`.
    pub fn start_node(
        self,
        node: crate::node::NodeHandle,
        upstream: std::sync::Arc<dyn crate::proxy::Upstream>,
        grpc: Option<(String, crate::security::Dialer)>,
        mode: &'static str,
    ) {
        #[cfg(not(madsim))]
        self.serve_node(node, upstream, grpc, mode);
        #[cfg(madsim)]
        {
            let _ = (node, upstream, grpc, mode);
            match self {}
        }
    }

    /// Serves the console of the cluster behind a proxy.
    pub fn start_proxy(self, remote: std::sync::Arc<crate::client::RemoteUpstream>) {
        #[cfg(not(madsim))]
        self.serve_proxy(remote);
        #[cfg(madsim)]
        {
            let _ = remote;
            match self {}
        }
    }
}

/// The token in `path`: its first line, which must not be empty.
fn read_token(path: &PathBuf) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--http-admin-token-file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.is_empty() {
        return Err(format!("--http-admin-token-file {}: the file holds no token on its first line", path.display()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token file gives its first line, trimmed; an empty one or a missing one is an error
    /// that names the file.
    #[test]
    fn token_files() {
        let dir = std::env::temp_dir().join(format!("coolbeans-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let good = dir.join("good");
        std::fs::write(&good, "  s3cret \nignored\n").expect("write");
        assert_eq!(read_token(&good), Ok("s3cret".to_string()));
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").expect("write");
        assert!(read_token(&empty).is_err_and(|e| e.contains("empty") || e.contains("no token")));
        assert!(read_token(&dir.join("missing")).is_err_and(|e| e.contains("missing")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
