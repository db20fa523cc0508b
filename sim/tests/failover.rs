//! The failover scenario passes on a handful of seeds, and each seed run twice gives the same
//! trace hash: a seed reproduces its run exactly.
#![cfg(madsim)]

/// Seeds 1 to 6 pass, each twice with one trace.
#[test]
fn failover_seeds_pass_and_repeat() {
    for seed in 1..=6 {
        let first = coolbeans_sim::run_seed(seed).unwrap_or_else(|(why, _)| panic!("seed {seed} failed: {why}"));
        let second = coolbeans_sim::run_seed(seed).unwrap_or_else(|(why, _)| panic!("seed {seed} failed: {why}"));
        assert_eq!(first, second, "seed {seed} gave two different traces");
    }
}
