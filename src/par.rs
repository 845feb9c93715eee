//! Ordered parallel map on scoped threads: a job's LLM requests and candidate
//! evaluations go up to `num_threads` at a time while the answers keep their slots, so
//! results never depend on completion order. (Jobs run on the runner's rayon pool; a
//! batch inside a job needs threads of its own, sized by `num_threads`, not by the pool.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` over `items` on up to `threads` threads, each with its own worker state made by
/// `worker(k)`; the results in item order. One thread (or one item) runs inline.
pub fn map_ordered<T, R, W>(
    items: &[T],
    threads: usize,
    mut worker: impl FnMut(usize) -> W,
    f: impl Fn(&mut W, &T) -> R + Sync,
) -> Vec<R>
where
    T: Sync,
    R: Send,
    W: Send,
{
    let workers = threads.min(items.len());
    if workers <= 1 {
        let mut w = worker(0);
        return items.iter().map(|item| f(&mut w, item)).collect();
    }
    let slots: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for k in 0..workers {
            let mut w = worker(k);
            let (slots, next, f) = (&slots, &next, &f);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    let r = f(&mut w, item);
                    *slots[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|s| {
            s.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("every slot is filled before the scope ends")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_slots_whatever_the_threads() {
        let items: Vec<u64> = (0..50).collect();
        let slow_first = |_: &mut (), &x: &u64| {
            std::thread::sleep(std::time::Duration::from_millis(if x < 3 { 20 } else { 0 }));
            x * x
        };
        let serial = map_ordered(&items, 1, |_| (), slow_first);
        for threads in [2, 4, 64] {
            assert_eq!(map_ordered(&items, threads, |_| (), slow_first), serial);
        }
    }

    #[test]
    fn each_thread_has_its_own_worker_state() {
        let items = vec![(); 40];
        let made = std::sync::atomic::AtomicUsize::new(0);
        let ids = map_ordered(
            &items,
            4,
            |k| {
                made.fetch_add(1, Ordering::SeqCst);
                k
            },
            |k, _| *k,
        );
        assert_eq!(made.load(Ordering::SeqCst), 4);
        assert!(ids.iter().all(|k| *k < 4));
    }
}
