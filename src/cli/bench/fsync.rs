//! The fsync phase: what the disk itself takes to make a small append durable, measured
//! beside the servers' latencies so that a latency goal the disk cannot meet shows as such.
//! It appends a record the size of a small batch to a file of its own and `fdatasync`s it,
//! one sample after another, then removes the file.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use super::measure::Latencies;

/// Bytes appended before each fdatasync: about one small batch of the log.
const RECORD_BYTES: usize = 256;

/// The fsync phase in `dir`; its report line.
pub fn run(dir: &Path, samples: usize) -> Result<String, String> {
    let path = dir.join(format!("coolbeans-fsync-probe-{}", std::process::id()));
    let measured = measure(&path, samples);
    let _ = std::fs::remove_file(&path);
    let latencies = measured?;
    Ok(format!("fsync: samples={samples} {}", latencies.summary()))
}

fn measure(path: &Path, samples: usize) -> Result<Latencies, String> {
    let failed = |e: std::io::Error| format!("fsync probe on {}: {e}", path.display());
    let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(failed)?;
    let record = [b'x'; RECORD_BYTES];
    let mut latencies = Latencies::with_capacity(samples);
    for _ in 0..samples {
        file.write_all(&record).map_err(failed)?;
        let started = Instant::now();
        file.sync_data().map_err(failed)?;
        latencies.record(started.elapsed());
    }
    Ok(latencies)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The probe takes as many samples as asked, reports them, and leaves no file behind.
    #[test]
    fn probe_reports_its_samples_and_cleans_up() {
        let dir = std::env::temp_dir().join(format!("coolbeans-fsync-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let line = run(&dir, 20).expect("the probe runs");
        assert!(line.starts_with("fsync: samples=20 p50="), "{line}");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "the probe's file is gone");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(run(&dir, 1).is_err(), "a missing directory is an error");
    }
}
