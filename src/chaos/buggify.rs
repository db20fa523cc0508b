//! Buggify points: places where the simulator may, now and then, do something legal but
//! unlucky (a slow fsync, a lost or repeated message, a snapshot at a bad moment). Correct
//! code survives every one of them. They fire only when the simulator enabled buggify for
//! the seed; in every other build `fires` is `false`.

#[cfg(madsim)]
thread_local! {
    static ENABLED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns buggify on or off for this thread's simulated world. (madsim's own buggify also
/// delays one network send in ten by seconds, which is more than we want.)
#[cfg(madsim)]
pub fn enable(on: bool) {
    ENABLED.with(|e| e.set(on));
}

/// Whether the buggify point fires this time, with probability `p` when enabled.
#[inline]
pub fn fires(p: f64) -> bool {
    #[cfg(madsim)]
    {
        use madsim::rand::Rng as _;
        ENABLED.with(|e| e.get()) && madsim::rand::thread_rng().gen_bool(p)
    }
    #[cfg(not(madsim))]
    {
        let _ = p;
        false
    }
}

/// With probability `p` when enabled, a pause of up to `max` to take before going on.
pub fn delay(p: f64, max: std::time::Duration) -> Option<std::time::Duration> {
    if !fires(p) {
        return None;
    }
    #[cfg(madsim)]
    {
        use madsim::rand::Rng as _;
        Some(max.mul_f64(madsim::rand::thread_rng().gen_range(0.0..1.0)))
    }
    #[cfg(not(madsim))]
    {
        Some(max)
    }
}

/// How long a log write's fsync takes beyond the write itself: in the simulator, where the
/// simulated disk is instant, up to a millisecond always (so the driver goes on while the
/// disk works, as on a real one) and now and then, with buggify, up to 200 ms; nothing
/// elsewhere (the real fsync takes its own time).
pub fn fsync_latency() -> Option<std::time::Duration> {
    #[cfg(madsim)]
    {
        use madsim::rand::Rng as _;
        let slow = delay(0.02, std::time::Duration::from_millis(200));
        let usual = std::time::Duration::from_micros(madsim::rand::thread_rng().gen_range(0..=1000));
        Some(slow.unwrap_or(usual))
    }
    #[cfg(not(madsim))]
    {
        None
    }
}
