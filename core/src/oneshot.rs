//! A one-shot reply slot that parks the waiting caller at once. Replies
//! come after an fsync, far beyond any spin window, so spinning (as a
//! general-purpose channel does) only steals CPU from the writer.

use std::sync::{Arc, Condvar, Mutex};

enum State<T> {
    Empty,
    Full(T),
    Dropped,
}

struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// The writer's end: sends one value, or signals "dropped" when dropped.
pub(crate) struct Sender<T> {
    slot: Option<Arc<Slot<T>>>,
}

/// The caller's end.
pub(crate) struct Receiver<T> {
    slot: Arc<Slot<T>>,
}

/// A connected pair.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Slot {
        state: Mutex::new(State::Empty),
        ready: Condvar::new(),
    });
    (
        Sender {
            slot: Some(slot.clone()),
        },
        Receiver { slot },
    )
}

impl<T> Sender<T> {
    /// Delivers the value and wakes the receiver.
    pub(crate) fn send(mut self, v: T) {
        if let Some(slot) = self.slot.take() {
            if let Ok(mut g) = slot.state.lock() {
                *g = State::Full(v);
            }
            slot.ready.notify_one();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            if let Ok(mut g) = slot.state.lock() {
                *g = State::Dropped;
            }
            slot.ready.notify_one();
        }
    }
}

impl<T> Receiver<T> {
    /// Waits for the value; `None` if the sender was dropped without one.
    pub(crate) fn recv(self) -> Option<T> {
        let mut g = self.slot.state.lock().ok()?;
        loop {
            match std::mem::replace(&mut *g, State::Dropped) {
                State::Full(v) => return Some(v),
                State::Dropped => return None,
                State::Empty => {
                    *g = State::Empty;
                    g = self.slot.ready.wait(g).ok()?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_across_threads() {
        let (tx, rx) = channel();
        let h = std::thread::spawn(move || tx.send(7));
        assert_eq!(rx.recv(), Some(7));
        h.join().unwrap();
    }

    #[test]
    fn dropped_sender_wakes_receiver_with_none() {
        let (tx, rx) = channel::<u8>();
        let h = std::thread::spawn(move || drop(tx));
        assert_eq!(rx.recv(), None);
        h.join().unwrap();
    }
}
