//! Security of the gRPC port, on real processes over loopback: with
//! mTLS, a node or caller whose certificate the cluster's CA did not sign can neither join,
//! send raft messages, call Leave nor put, and each refusal is logged with its address; a
//! proxy's certificate or token cannot call Leave and an admin's can; a plain-text client
//! on the TLS port gets an error naming TLS; certificates reload on SIGHUP.
#![cfg(not(madsim))]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{client_cli, cluster, free_port, loopback, temp_dir, Node, Proc};
use coolbeans::api::{Empty, LeaveRequest, PutRequest, RaftBatch};
use coolbeans::cli::security::DialArgs;
use coolbeans::security::Dialer;

/// Writes a test CA and its certificates into `dir` with `coolbeans gen-test-ca`.
fn gen_ca(dir: &Path) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coolbeans")).arg("gen-test-ca").arg(dir).output().expect("run gen-test-ca");
    assert!(out.status.success(), "gen-test-ca: {}", String::from_utf8_lossy(&out.stderr));
}

/// The flags of the certificate `name` of the CA in `certs`, trusting the CA in `ca`.
fn tls_flags(certs: &Path, name: &str, ca: &Path) -> Vec<String> {
    let path = |p: PathBuf| p.display().to_string();
    vec![
        "--tls-cert".into(),
        path(certs.join(format!("{name}.pem"))),
        "--tls-key".into(),
        path(certs.join(format!("{name}-key.pem"))),
        "--tls-ca".into(),
        path(ca.join("ca.pem")),
    ]
}

/// A dialer presenting the certificate `name` of `certs`, trusting the CA in `ca`.
fn tls_dialer(certs: &Path, name: &str, ca: &Path) -> Dialer {
    let args = DialArgs {
        tls_cert: Some(certs.join(format!("{name}.pem"))),
        tls_key: Some(certs.join(format!("{name}-key.pem"))),
        tls_ca: Some(ca.join("ca.pem")),
        auth_token_file: None,
    };
    args.load(None).expect("the certificates load").dialer
}

fn token_dialer(file: &Path) -> Dialer {
    DialArgs { auth_token_file: Some(file.to_path_buf()), ..DialArgs::default() }.load(None).expect("the token loads").dialer
}

async fn channel(dialer: &Dialer, addr: SocketAddr) -> Result<tonic::transport::Channel, String> {
    let endpoint = dialer.endpoint(&addr.to_string())?.connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(5));
    dialer.connect(&endpoint).await.map_err(|e| coolbeans::security::dial::explain(&e))
}

/// Node `addr`'s status as `dialer` can ask it.
async fn status(dialer: &Dialer, addr: SocketAddr) -> Result<coolbeans::api::NodeStatusResponse, String> {
    let mut client = dialer.cluster(channel(dialer, addr).await?);
    client.status(Empty {}).await.map(|r| r.into_inner()).map_err(|s| format!("{s:?}"))
}

/// Waits until a node reports a leader and, through it, `members` members; answers the
/// leader's address.
async fn await_leader(dialer: &Dialer, nodes: &[Node], members: usize, dir: &Path) -> SocketAddr {
    let started = Instant::now();
    loop {
        for node in nodes {
            if let Ok(s) = status(dialer, node.addr).await {
                let leader = nodes.iter().find(|n| n.id == s.leader_id);
                if let Some(leader) = leader.filter(|_| s.members.len() == members) {
                    return leader.addr;
                }
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no leader of {members} members; logs in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn leave(dialer: &Dialer, addr: SocketAddr, node_id: u64) -> Result<(), tonic::Status> {
    let mut client = dialer.cluster(channel(dialer, addr).await.map_err(tonic::Status::unavailable)?);
    client.leave(LeaveRequest { node_id: node_id.to_string() }).await.map(|_| ())
}

async fn put(dialer: &Dialer, addr: SocketAddr) -> Result<i64, tonic::Status> {
    let mut client = dialer.jobs(channel(dialer, addr).await.map_err(tonic::Status::unavailable)?);
    let request = PutRequest { tube_name: "default".into(), ttr: 60, body_size: 2, body: "hi".into(), ..PutRequest::default() };
    client.put(request).await.map(|r| r.into_inner().job_id)
}

/// A raft batch as a stranger would send it: refused before any node reads it.
async fn send_raft(dialer: &Dialer, addr: SocketAddr) -> Result<(), tonic::Status> {
    let mut client = dialer.raft(channel(dialer, addr).await.map_err(tonic::Status::unavailable)?);
    client.send(RaftBatch { from: 9, messages: vec![], from_addr: "127.0.0.1:1".into(), cluster_id: 0, version: 0 }).await.map(|_| ())
}

fn log_of(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
}

/// Waits until the log `name` in `dir` has a line holding every one of `words`.
async fn await_log_line(dir: &Path, name: &str, words: &[&str]) -> String {
    let started = Instant::now();
    loop {
        let log = log_of(dir, name);
        if let Some(line) = log.lines().find(|l| words.iter().all(|w| l.contains(w))) {
            return line.to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "no line with {words:?} in {name}.log:\n{log}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three nodes on mTLS. A stranger (a certificate another CA signed, though it trusts ours)
/// cannot send raft messages, call Leave or put, and each refusal is logged with its address;
/// a stranger node started with --join never becomes a member. Our proxy's certificate
/// puts but cannot call Leave (PermissionDenied, logged); our admin's can. A plain-text
/// cluster-client gets an error that names TLS. A node with a certificate that is no peer's
/// does not start. Proxies, in a node of their own and apart,
/// forward puts over mTLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_mtls_only_the_cas_certificates_reach_the_cluster_and_each_in_its_role() {
    let dir = temp_dir("grpc-mtls");
    let (ours, theirs) = (dir.join("ca"), dir.join("rogue-ca"));
    gen_ca(&ours);
    gen_ca(&theirs);
    let mut lone: Vec<String> = vec!["cluster-node".into(), "--node-id".into(), "1".into(), "--listen".into(), loopback(free_port()).to_string()];
    lone.extend(["--data-dir".into(), dir.join("lone").display().to_string(), "--peers".into(), "1=127.0.0.1:1".into()]);
    lone.extend(tls_flags(&ours, "frontend", &ours));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_coolbeans")).args(&lone).output().expect("run cluster-node");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("holds the roles frontend, not peer"), "a node needs a peer's certificate: {stderr}");

    let node_flags = tls_flags(&ours, "node", &ours);
    let co_located = loopback(free_port());
    let mut nodes = cluster(&dir, |id| {
        let proxy = if id == 1 {
            vec!["--beanstalkd-listen".into(), co_located.to_string()]
        } else {
            vec![]
        };
        [node_flags.clone(), proxy].concat()
    });
    nodes.iter_mut().for_each(|n| n.proc.start());
    let admin = tls_dialer(&ours, "admin", &ours);
    let leader = await_leader(&admin, &nodes, 3, &dir).await;
    let leader_log = format!("node-{}", nodes.iter().find(|n| n.addr == leader).expect("leader").id);
    let follower = nodes.iter().find(|n| n.addr != leader).expect("a follower").id;

    let stranger = tls_dialer(&theirs, "node", &ours);
    let refused = send_raft(&stranger, leader).await.expect_err("a stranger's raft message is refused");
    assert_ne!(refused.code(), tonic::Code::Ok);
    assert!(leave(&stranger, leader, follower).await.is_err(), "a stranger cannot call Leave");
    assert!(put(&stranger, leader).await.is_err(), "a stranger cannot put");
    let line = await_log_line(&dir, &leader_log, &["refused a gRPC connection", "peer=127.0.0.1:"]).await;
    assert!(line.contains("TLS handshake failed"), "{line}");

    let stranger_addr = loopback(free_port());
    let mut stranger_node = Proc::new(
        [
            vec!["cluster-node".into(), "--node-id".into(), "9".into(), "--listen".into(), stranger_addr.to_string()],
            vec!["--data-dir".into(), dir.join("node-9").display().to_string(), "--join".into(), leader.to_string()],
            tls_flags(&theirs, "node", &ours),
        ]
        .concat(),
        dir.join("node-9.log"),
    );
    stranger_node.start();
    await_log_line(&dir, "node-9", &["join not accepted yet"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(status(&admin, leader).await.expect("status").members.len(), 3, "the stranger did not join");
    drop(stranger_node);

    let proxy = tls_dialer(&ours, "frontend", &ours);
    put(&proxy, leader).await.expect("a proxy puts");
    let denied = leave(&proxy, leader, follower).await.expect_err("a proxy cannot call Leave");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    assert!(denied.message().contains("needs the role admin"), "{denied:?}");
    await_log_line(&dir, &leader_log, &["call refused", "Cluster/Leave", "frontend"]).await;
    let denied = put(&admin, leader).await.expect_err("an admin is no proxy");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");

    let upstreams = nodes.iter().map(|n| n.addr.to_string()).collect::<Vec<_>>().join(",");
    let apart = loopback(free_port());
    let proxy_args =
        [vec!["beanstalkd".into(), "--listen".into(), apart.to_string(), "--upstreams".into(), upstreams], tls_flags(&ours, "frontend", &ours)];
    let mut proxy = Proc::new(proxy_args.concat(), dir.join("proxy.log"));
    proxy.start();
    for addr in [co_located, apart] {
        common::wait_for_port(addr, Duration::from_secs(20)).await;
        let id = common::beanstalk::Beanstalk::connect(addr).put("over mTLS");
        assert!(id > 0, "a put through the proxy at {addr}");
    }
    drop(proxy);
    let wrong = loopback(free_port());
    let admin_proxy =
        [vec!["beanstalkd".into(), "--listen".into(), wrong.to_string(), "--upstreams".into(), leader.to_string()], tls_flags(&ours, "admin", &ours)];
    let mut proxy = Proc::new(admin_proxy.concat(), dir.join("admin-proxy.log"));
    proxy.start();
    common::wait_for_port(wrong, Duration::from_secs(20)).await;
    let answer = common::beanstalk::Beanstalk::connect(wrong).ask("put 0 0 60 2\r\nhi");
    assert_eq!(answer, "INTERNAL_ERROR", "a proxy with an admin's certificate cannot put");
    await_log_line(&dir, "admin-proxy", &["cluster unavailable", "needs the role frontend"]).await;
    drop(proxy);

    leave(&admin, leader, follower).await.expect("an admin calls Leave");
    await_leader(&admin, &nodes, 2, &dir).await;

    let leader_addr = leader.to_string();
    let (code, _, stderr) = client_cli(&["--node-addr", &leader_addr, "status"]);
    assert_ne!(code, 0, "a plain-text client fails");
    assert!(stderr.contains("TLS"), "the error names TLS: {stderr}");
    await_log_line(&dir, &leader_log, &["refused a plain-text gRPC client"]).await;
    let admin_flags = tls_flags(&ours, "admin", &ours);
    let mut args: Vec<&str> = admin_flags.iter().map(String::as_str).collect();
    args.extend(["--node-addr", &leader_addr, "status", "--json"]);
    let (code, stdout, stderr) = client_cli(&args);
    assert_eq!(code, 0, "cluster-client with the admin's certificate: {stderr}");
    assert!(stdout.contains("\"members\""), "{stdout}");
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Three nodes with tokens, no TLS: the nodes' own token (peer, frontend) carries raft; a
/// proxy's token puts but gets PermissionDenied on Leave; an admin's token calls Leave; a
/// call without a token is refused; once a token is taken out of the file and the node is
/// sent SIGHUP, it is refused too. A node whose own token is missing or no peer's does not
/// start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_give_their_roles_without_tls() {
    let dir = temp_dir("grpc-tokens");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write token file");
        path.display().to_string()
    };
    let table = write("tokens", "# role token\npeer,frontend n0de-t0ken\nfrontend fr0nt-t0ken\nadmin 4dm1n-t0ken\n");
    let own = write("node.token", "n0de-t0ken\n");
    let (proxy_file, admin_file) = (dir.join("proxy.token"), dir.join("admin.token"));
    std::fs::write(&proxy_file, "fr0nt-t0ken").expect("write");
    std::fs::write(&admin_file, "4dm1n-t0ken").expect("write");
    let proxy_only = write("proxy-only.token", "fr0nt-t0ken");
    for (own_flags, why) in
        [(vec![], "needs --auth-token-file"), (vec!["--auth-token-file".to_string(), proxy_only], "holds the roles frontend, not peer")]
    {
        let mut args: Vec<String> = vec!["cluster-node".into(), "--node-id".into(), "1".into(), "--listen".into(), loopback(free_port()).to_string()];
        args.extend(["--data-dir".into(), dir.join("lone").display().to_string(), "--peers".into(), "1=127.0.0.1:1".into()]);
        args.extend([vec!["--auth-tokens-file".to_string(), table.clone()], own_flags].concat());
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_coolbeans")).args(&args).output().expect("run cluster-node");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(why), "a node without a peer's token does not start: {stderr}");
    }
    let flags = vec!["--auth-tokens-file".to_string(), table, "--auth-token-file".into(), own];
    let mut nodes = cluster(&dir, |_| flags.clone());
    nodes.iter_mut().for_each(|n| n.proc.start());
    let admin = token_dialer(&admin_file);
    let leader = await_leader(&admin, &nodes, 3, &dir).await;
    let follower = nodes.iter().find(|n| n.addr != leader).expect("a follower").id;
    assert!(log_of(&dir, "node-1").contains("gRPC is plain text: tokens and jobs cross the network unencrypted"));

    let proxy = token_dialer(&proxy_file);
    put(&proxy, leader).await.expect("a proxy's token puts");
    let denied = leave(&proxy, leader, follower).await.expect_err("a proxy's token cannot call Leave");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let nobody = status(&Dialer::default(), leader).await.expect_err("no token, no status");
    assert!(nobody.contains("PermissionDenied"), "{nobody}");
    leave(&admin, leader, follower).await.expect("an admin's token calls Leave");
    await_leader(&admin, &nodes, 2, &dir).await;

    let leader_node = nodes.iter().find(|n| n.addr == leader).expect("the leader");
    std::fs::write(dir.join("tokens"), "peer,frontend n0de-t0ken\nfrontend fr0nt-t0ken\n").expect("rewrite the tokens");
    let pid = leader_node.proc.child.as_ref().expect("started").id() as i32;
    // SAFETY: a signal to a child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    await_log_line(&dir, &format!("node-{}", leader_node.id), &["reloaded on SIGHUP", "/tokens"]).await;
    let dropped = status(&admin, leader).await.expect_err("a token taken out of the file is refused");
    assert!(dropped.contains("PermissionDenied"), "{dropped}");
    drop(nodes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node reloads its certificates on SIGHUP: once its files hold a certificate of a new CA,
/// a caller with the old CA's certificate is refused and one with the new CA's is served,
/// with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_reload_on_sighup() {
    let dir = temp_dir("grpc-reload");
    let (old, new, live) = (dir.join("old-ca"), dir.join("new-ca"), dir.join("live"));
    gen_ca(&old);
    gen_ca(&new);
    let copy = |from: &Path| {
        std::fs::create_dir_all(&live).expect("mkdir");
        for file in ["ca.pem", "node.pem", "node-key.pem"] {
            std::fs::copy(from.join(file), live.join(file)).expect("copy");
        }
    };
    copy(&old);
    let addr = loopback(free_port());
    let mut args: Vec<String> = vec!["cluster-node".into(), "--node-id".into(), "1".into(), "--listen".into(), addr.to_string()];
    args.extend(["--data-dir".into(), dir.join("node-1").display().to_string(), "--peers".into(), format!("1={addr}")]);
    args.extend(tls_flags(&live, "node", &live));
    let mut node = Proc::new(args, dir.join("node-1.log"));
    node.start();
    let (old_admin, new_admin) = (tls_dialer(&old, "admin", &old), tls_dialer(&new, "admin", &new));
    let started = Instant::now();
    while status(&old_admin, addr).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "the node does not answer; log in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(status(&new_admin, addr).await.is_err(), "the new CA is not trusted yet");

    copy(&new);
    let pid = node.child.as_ref().expect("started").id() as i32;
    // SAFETY: a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    await_log_line(&dir, "node-1", &["reloaded on SIGHUP", "node.pem"]).await;
    status(&new_admin, addr).await.expect("the new CA's certificate is served");
    let old_trusting_new = tls_dialer(&old, "admin", &new);
    assert!(status(&old_trusting_new, addr).await.is_err(), "the old CA's certificate is refused");
    drop(node);
    let _ = std::fs::remove_dir_all(&dir);
}
