//! A node's health state, with hysteresis so a single spike cannot make it flap.
//!
//! ```text
//! HEALTHY ──(degrade_after anomalous windows in a row)──▶ DEGRADED
//! DEGRADED ──(critical_after anomalous in a row)──▶ CRITICAL
//! DEGRADED / CRITICAL ──(recover_after normal in a row)──▶ RECOVERING
//! RECOVERING ──(healthy_after normal in a row)──▶ HEALTHY
//! RECOVERING ──(degrade_after anomalous in a row)──▶ DEGRADED
//! ```

use meshflow_schemas::HealthState;

/// Hysteresis counts, in windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive anomalous windows that turn HEALTHY or RECOVERING into DEGRADED.
    pub degrade_after: u32,
    /// Consecutive anomalous windows that turn DEGRADED into CRITICAL.
    pub critical_after: u32,
    /// Consecutive normal windows that turn DEGRADED or CRITICAL into RECOVERING.
    pub recover_after: u32,
    /// Consecutive normal windows that turn RECOVERING into HEALTHY.
    pub healthy_after: u32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Self {
            degrade_after: 2,
            critical_after: 5,
            recover_after: 3,
            healthy_after: 5,
        }
    }
}

/// One node's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Health {
    state: HealthState,
    anomalous_run: u32,
    normal_run: u32,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            state: HealthState::Healthy,
            anomalous_run: 0,
            normal_run: 0,
        }
    }
}

impl Health {
    /// The current state.
    pub fn state(&self) -> HealthState {
        self.state
    }

    /// Advances by one window, anomalous or not, and returns the new state.
    pub fn observe(&mut self, anomalous: bool, h: &Hysteresis) -> HealthState {
        if anomalous {
            self.anomalous_run += 1;
            self.normal_run = 0;
        } else {
            self.normal_run += 1;
            self.anomalous_run = 0;
        }
        let (a, n) = (self.anomalous_run, self.normal_run);
        let next = match self.state {
            HealthState::Healthy if a >= h.degrade_after.max(1) => HealthState::Degraded,
            HealthState::Degraded if a >= h.critical_after.max(1) => HealthState::Critical,
            HealthState::Degraded | HealthState::Critical if n >= h.recover_after.max(1) => {
                HealthState::Recovering
            }
            HealthState::Recovering if a >= h.degrade_after.max(1) => HealthState::Degraded,
            HealthState::Recovering if n >= h.healthy_after.max(1) => HealthState::Healthy,
            s => s,
        };
        if next != self.state {
            self.state = next;
            // Runs count from the transition: each state needs its own evidence.
            self.anomalous_run = 0;
            self.normal_run = 0;
        }
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(flags: &[bool], h: &Hysteresis) -> Vec<HealthState> {
        let mut health = Health::default();
        flags.iter().map(|&f| health.observe(f, h)).collect()
    }

    #[test]
    fn full_cycle() {
        let h = Hysteresis::default();
        let mut flags = vec![false; 3];
        flags.extend([true; 7]);
        flags.extend([false; 8]);
        let states = run(&flags, &h);
        use HealthState::*;
        assert_eq!(states[2], Healthy);
        assert_eq!(states[3], Healthy);
        assert_eq!(states[4], Degraded);
        assert_eq!(states[8], Degraded);
        assert_eq!(states[9], Critical);
        assert_eq!(states[11], Critical);
        assert_eq!(states[12], Recovering);
        assert_eq!(states[16], Recovering);
        assert_eq!(states[17], Healthy);
    }

    #[test]
    fn relapse_while_recovering() {
        let h = Hysteresis::default();
        let mut flags = vec![true; 2];
        flags.extend([false; 3]);
        flags.extend([true; 2]);
        let states = run(&flags, &h);
        assert_eq!(states[4], HealthState::Recovering);
        assert_eq!(states[6], HealthState::Degraded);
    }

    proptest! {
        /// Isolated spikes (each anomalous window surrounded by normal ones) never
        /// leave HEALTHY when `degrade_after ≥ 2`.
        #[test]
        fn isolated_spikes_never_flap(
            gaps in prop::collection::vec(1usize..10, 1..50),
            degrade_after in 2u32..5,
        ) {
            let h = Hysteresis { degrade_after, ..Hysteresis::default() };
            let mut flags = Vec::new();
            for g in gaps {
                flags.extend(std::iter::repeat_n(false, g));
                flags.push(true);
            }
            for s in run(&flags, &h) {
                prop_assert_eq!(s, HealthState::Healthy);
            }
        }

        /// Each state lasts at least as long as its hysteresis demands: no state
        /// changes twice in fewer windows than the smallest count.
        #[test]
        fn transitions_are_spaced(flags in prop::collection::vec(any::<bool>(), 0..300)) {
            let h = Hysteresis::default();
            let states = run(&flags, &h);
            let min = [h.degrade_after, h.critical_after, h.recover_after, h.healthy_after]
                .into_iter().min().unwrap() as usize;
            let changes: Vec<usize> = states.windows(2).enumerate()
                .filter(|(_, w)| w[0] != w[1]).map(|(i, _)| i + 1).collect();
            for pair in changes.windows(2) {
                prop_assert!(pair[1] - pair[0] >= min);
            }
        }
    }
}
