//! How much memory restoring a snapshot takes besides the state it builds, counted by the
//! allocator itself: a test binary of its own, so no other test allocates meanwhile, and a
//! count that does not depend on how an allocator keeps or returns its pages.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use coolbeans::fsm::Op;
use coolbeans::node::replicated::Replicated;
use prost::Message;

/// The system allocator, counting the bytes allocated now and at most.
struct Counting;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

// SAFETY: every call goes to the system allocator as it came; only counts are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        grew(new_size);
        let moved = unsafe { System.realloc(ptr, layout, new_size) };
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Restoring 100k jobs from a snapshot's encoding takes, at its peak, little more than the
/// state it builds. Restore used to decode the whole snapshot, then build the jobs in a map
/// beside it, then box them: more than twice the state at the peak, which the allocator then
/// kept (`serve -b` with 930k jobs held 689 MB after a restart, 503 MB before). The bound, a
/// quarter more, is generous: one job is decoded at a time.
#[test]
fn restore_peaks_near_the_state_it_builds() {
    let mut state = Replicated::new(BTreeMap::from([(1, "127.0.0.1:1".to_string())]));
    for _ in 0..100_000 {
        let body = Bytes::from(vec![b'x'; 100]);
        let put = Op::Put { client: None, tube: "default".into(), pri: 0, delay_secs: 0, ttr_secs: 60, body };
        state.fsm.apply(put, 0).reply.expect("put");
    }
    let encoded = Bytes::from(state.snapshot().encode_to_vec());
    let digest = state.digest();
    drop(state);

    let before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(before, Ordering::Relaxed);
    let restored = Replicated::restore_encoded(&encoded, coolbeans::node::version::STATE_MACHINE_VERSION).expect("restores");
    let state_bytes = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let peak_bytes = PEAK_BYTES.load(Ordering::Relaxed) - before;
    assert_eq!(restored.digest(), digest);
    eprintln!("restored state {} MB, peak {} MB", state_bytes >> 20, peak_bytes >> 20);
    assert!(peak_bytes <= state_bytes + state_bytes / 4, "restoring {} MB of state peaked at {} MB", state_bytes >> 20, peak_bytes >> 20);
}
