//! What the simulator's Raft checkers see of each node: every entry it applies, every
//! snapshot it receives and installs, and each start. The simulator installs one observer per run (a
//! thread-local: madsim runs a whole world on one thread). Outside the simulator build these
//! calls do nothing.

/// The kind of a Raft log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    Normal,
    ConfChange,
}

/// Something one node did to its applied state.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// The node started with its state restored up to `applied`.
    Started { node: u64, applied: u64 },
    /// The node applied the entry at `index`.
    Applied { node: u64, index: u64, term: u64, kind: EntryKind, data: &'a [u8] },
    /// The node replaced its state by a snapshot taken at `index`.
    Installed { node: u64, index: u64 },
    /// The node holds `received_bytes` of the data of the snapshot it is receiving.
    SnapshotProgress { node: u64, received_bytes: u64 },
    /// The node received a snapshot's `bytes` of data in chunks and handed it to raft; the
    /// call that ended it resumed from `resumed_from` bytes that an earlier call left.
    SnapshotReceived { node: u64, index: u64, bytes: u64, resumed_from: u64 },
}

/// The installed observer, if any.
#[cfg(madsim)]
type Observer = Option<std::rc::Rc<dyn Fn(Event<'_>)>>;

#[cfg(madsim)]
thread_local! {
    static OBSERVER: std::cell::RefCell<Observer> = const { std::cell::RefCell::new(None) };
}

/// Installs the observer for this thread (the simulator does, once per world).
#[cfg(madsim)]
pub fn install(observer: impl Fn(Event<'_>) + 'static) {
    OBSERVER.with(|o| *o.borrow_mut() = Some(std::rc::Rc::new(observer)));
}

/// Removes this thread's observer.
#[cfg(madsim)]
pub fn uninstall() {
    OBSERVER.with(|o| *o.borrow_mut() = None);
}

/// Tells the observer, if any.
#[inline]
pub fn report(event: Event<'_>) {
    #[cfg(madsim)]
    {
        // Cloned out first: the observer may itself read node state that reports.
        let observer = OBSERVER.with(|o| o.borrow().clone());
        if let Some(observer) = observer {
            observer(event);
        }
    }
    #[cfg(not(madsim))]
    {
        let _ = event;
    }
}
