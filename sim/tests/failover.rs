//! The focused gRPC scenarios pass on a handful of seeds, and each seed run twice gives the
//! same trace hash: a seed reproduces its run exactly.
#![cfg(madsim)]

/// Seeds 1 to 4 pass, each twice with one trace.
#[test]
fn focused_scenarios_pass_and_repeat() {
    for seed in 1..=4 {
        let first = coolbeans_sim::run_scenarios(seed).unwrap_or_else(|(why, _)| panic!("seed {seed} failed: {why}"));
        let second = coolbeans_sim::run_scenarios(seed).unwrap_or_else(|(why, _)| panic!("seed {seed} failed: {why}"));
        assert_eq!(first, second, "seed {seed} gave two different traces");
    }
}
