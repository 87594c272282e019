//! Memory of the mock KV store, measured exactly with a counting allocator (which is why this
//! is its own test binary): one million small keys, and memory that grows with the data.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use kvchaos::mockkv::store::{PutRequest, Store};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Live heap bytes per key after putting `n` keys like `queue:lease:0000042` with a 16-byte value.
fn bytes_per_key(n: usize) -> f64 {
    let mut store = Store::default();
    let before = LIVE.load(Ordering::Relaxed);
    let now_ms = 1_700_000_000_000;
    for i in 0..n {
        let req = PutRequest {
            value: Bytes::copy_from_slice(b"0123456789abcdef"),
            ..PutRequest::default()
        };
        if store
            .put(
                "default",
                &format!("queue:lease:{i:07}"),
                req,
                now_ms,
                false,
            )
            .is_err()
        {
            panic!("put {i} refused");
        }
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(store.live_keys("default", now_ms), n);
    (after - before) as f64 / n as f64
}

#[test]
fn one_million_small_keys_cost_a_bounded_and_constant_amount_per_key() {
    let small = bytes_per_key(100_000);
    let large = bytes_per_key(1_000_000);
    // Key (19 bytes) + value (16 bytes) of data per key; the rest is the ordered map (nodes
    // about half full under sequential inserts) and the entry. Measured: 252 bytes per key;
    // it was 492 before a key's version list stopped reserving room for four.
    println!("mock KV store: {large:.0} bytes per key at 1,000,000 keys ({small:.0} at 100,000)");
    assert!(large < 300.0, "{large:.0} bytes per key");
    // Proportional to the data: the per-key cost does not grow with the number of keys.
    assert!(
        (large - small).abs() / small < 0.15,
        "{small:.0} vs {large:.0}"
    );
}
