//! One process per data dir: a second `serve` or `cluster-node` on a dir in use refuses to
//! start, naming the dir and the process holding it, and leaves the first one's data alone.
#![cfg(not(madsim))]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::beanstalk::Beanstalk;
use common::{cluster, free_port, loopback, temp_dir, wait_for_port, Proc};

fn run(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coolbeans")).args(args).output().expect("run coolbeans")
}

/// The second process failed at once, saying whose the dir is.
fn assert_refused(second: &Output, dir: &std::path::Path, holder: u32) {
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second process on {} started: {stderr}", dir.display());
    assert!(stderr.contains(&format!("data dir {} is in use by process {holder}", dir.display())), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_a_data_dir_in_use_refuses_to_start() {
    let dir = temp_dir("lock-serve");
    let data = dir.join("data");
    let port = free_port();
    let serve = |port: u16| -> Vec<String> {
        ["serve", "-l", "127.0.0.1", "-p", &port.to_string(), "-b", &data.display().to_string()].map(String::from).to_vec()
    };
    let mut first = Proc::new(serve(port), dir.join("first.log"));
    first.start();
    wait_for_port(loopback(port), Duration::from_secs(20)).await;
    let mut client = Beanstalk::connect(loopback(port));
    assert_eq!(client.put("hi"), 1);

    let second = run(&serve(free_port()));
    assert_refused(&second, &data, first.child.as_ref().expect("running").id());

    // The first is untouched and still serves its job.
    assert_eq!(client.ask("peek 1"), "FOUND 1 2");
    drop(client);
    // Once it is gone, the dir is free again, with its job.
    first.kill();
    let port = free_port();
    let mut third = Proc::new(serve(port), dir.join("third.log"));
    third.start();
    wait_for_port(loopback(port), Duration::from_secs(20)).await;
    assert_eq!(Beanstalk::connect(loopback(port)).ask("peek 1"), "FOUND 1 2");
    third.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_a_data_dir_in_use_refuses_to_start() {
    let dir = temp_dir("lock-node");
    let mut nodes = cluster(&dir, |_| Vec::new());
    let node = &mut nodes[0];
    node.proc.start();
    wait_for_port(node.addr, Duration::from_secs(20)).await;
    // The same flags but another port: only the data dir is shared.
    let mut args = node.proc.args.clone();
    let listen = args.iter().position(|a| a == "--listen").expect("--listen") + 1;
    args[listen] = loopback(free_port()).to_string();
    let second = run(&args);
    assert_refused(&second, &dir.join("node-1"), node.proc.child.as_ref().expect("running").id());
    node.proc.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
