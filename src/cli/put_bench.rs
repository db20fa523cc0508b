//! `coolbeans cluster-client put-bench`: commit latency and write throughput of a cluster,
//! measured with concurrent writers over the gRPC API (a benchmark, not a test).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::client::JobClient;
use crate::security::Dialer;

/// What one writer measured: the latency of each acknowledged put, and failures.
struct WriterRun {
    latencies_us: Vec<u64>,
    failed: u64,
}

async fn writer(name: String, (nodes, dialer): (Vec<SocketAddr>, Dialer), until: Instant, body: Vec<u8>) -> WriterRun {
    let mut client = JobClient::dialing(&name, nodes, dialer);
    let mut run = WriterRun { latencies_us: Vec::new(), failed: 0 };
    while Instant::now() < until {
        let started = Instant::now();
        match client.put("bench", 100, &body).await {
            Ok(_) => run.latencies_us.push(started.elapsed().as_micros() as u64),
            Err(_) => run.failed += 1,
        }
    }
    run
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank] as f64 / 1000.0
}

/// Runs `writers` concurrent writers for `seconds` and reports what they saw.
pub async fn run((nodes, dialer): (Vec<SocketAddr>, &Dialer), writers: usize, seconds: u64, body_bytes: usize) -> Result<String, String> {
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let body = vec![b'x'; body_bytes];
    let tasks: Vec<_> = (0..writers)
        .map(|i| tokio::spawn(writer(format!("bench-{}-{i}", std::process::id()), (nodes.clone(), dialer.clone()), until, body.clone())))
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let run = t.await.map_err(|e| format!("writer task failed: {e}"))?;
        latencies.extend(run.latencies_us);
        failed += run.failed;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(format!(
        "writers={writers} seconds={elapsed:.1} body={body_bytes}B acknowledged={} failed={failed} writes/s={:.0} latency_ms p50={:.2} p90={:.2} p99={:.2} max={:.2}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.90),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
    ))
}
