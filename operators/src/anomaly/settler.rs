//! Settling a scorer's last window on a helper thread while the worker goes on.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::scorer::WorkerScorer;

/// A [`WorkerScorer`] that settles ([`WorkerScorer::settle`]) on a helper thread of
/// its own, so that the upkeep of a scored window's histories overlaps the worker's
/// feature work on the next window instead of following it.
///
/// The scorer is handed to the helper whole and handed back whole: one thread at a
/// time touches it, the same operations run in the same order, and the scores are
/// exactly what they are when the worker settles it itself. Without a helper (none
/// asked for, or none could be started) the worker settles it itself.
pub struct Settler {
    /// The scorer, when it is not with the helper.
    scorer: Option<Box<WorkerScorer>>,
    to_helper: Option<SyncSender<Box<WorkerScorer>>>,
    from_helper: Receiver<Box<WorkerScorer>>,
    helper: Option<JoinHandle<()>>,
}

impl Settler {
    /// Holds `scorer`, with a helper thread called `helper` if one is given.
    pub fn new(scorer: WorkerScorer, helper: Option<String>) -> Self {
        let (to_helper, inbox) = sync_channel::<Box<WorkerScorer>>(1);
        let (outbox, from_helper) = sync_channel(1);
        let helper = helper.and_then(|name| {
            std::thread::Builder::new()
                .name(name)
                .spawn(move || {
                    for mut scorer in inbox {
                        scorer.settle();
                        if outbox.send(scorer).is_err() {
                            break;
                        }
                    }
                })
                .map_err(|e| {
                    tracing::warn!(
                        "no thread to settle anomaly scores on ({e}); the worker settles them"
                    )
                })
                .ok()
        });
        Self {
            scorer: Some(Box::new(scorer)),
            to_helper: helper.is_some().then_some(to_helper),
            from_helper,
            helper,
        }
    }

    /// The scorer, waited for while the helper still settles it.
    ///
    /// # Panics
    /// If the helper thread panicked while settling (its own panic message says why).
    pub fn scorer(&mut self) -> &mut WorkerScorer {
        let scorer = match self.scorer.take() {
            Some(scorer) => scorer,
            None => self
                .from_helper
                .recv()
                .expect("the anomaly scorer's settle thread stopped"),
        };
        self.scorer.insert(scorer)
    }

    /// Whether the scorer is here and holds a scored window not settled yet.
    pub fn unsettled(&self) -> bool {
        self.scorer.as_ref().is_some_and(|s| s.unsettled())
    }

    /// Hands the scorer to the helper to settle, or settles it here without one.
    pub fn settle(&mut self) {
        let Some(scorer) = self.scorer.take() else {
            return;
        };
        let Some(to_helper) = &self.to_helper else {
            self.scorer.insert(scorer).settle();
            return;
        };
        if let Err(returned) = to_helper.send(scorer) {
            self.scorer.insert(returned.0).settle();
        }
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        self.to_helper = None;
        if let Some(helper) = self.helper.take() {
            // A panic there was reported when it happened.
            let _ = helper.join();
        }
    }
}
