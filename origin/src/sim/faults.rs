//! Failure modes a router must survive, switchable while the simulator runs so one test can
//! take a backend from healthy to broken and back without restarting it: an error before any
//! token (--fail-rate), a generation that never starts (--hang) and a stream cut midway
//! (--drop-after). Each request reads the switches once, on arrival, so a change never
//! affects a request already being served.

use super::generate::SplitMix64;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Mutex;

/// The switches, as `GET /sim/faults` shows them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FaultSettings {
    pub fail_rate: f64,
    pub hang: bool,
    pub drop_after: Option<u32>,
}

/// A change of some switches (`POST /sim/faults`): absent fields stay as they are;
/// `"drop_after": null` turns dropping off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    #[serde(default)]
    pub fail_rate: Option<f64>,
    #[serde(default)]
    pub hang: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub drop_after: Option<Option<u32>>,
}

/// What happens to one request, decided on arrival.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultPlan {
    pub fail: bool,
    pub hang: bool,
    pub drop_after: Option<u32>,
}

#[derive(Debug)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    settings: FaultSettings,
    // Seeded, so a run with the same --seed fails the same requests (by arrival order).
    rng: SplitMix64,
}

/// Tells a field given as `null` (Some(None)) from a missing one (None).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Option::<u32>::deserialize(d).map(Some)
}

impl Faults {
    pub fn new(settings: FaultSettings, seed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                settings,
                rng: SplitMix64::new(seed ^ 0xFA17_FA17_FA17_FA17),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing panics while holding the lock, but a poisoned lock still holds valid
        // settings, so keep serving rather than propagate a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn settings(&self) -> FaultSettings {
        self.state().settings
    }

    /// Applies a change and returns the new settings.
    ///
    /// # Errors
    /// A message when `fail_rate` is outside 0..=1; nothing changes then.
    pub fn update(&self, update: FaultUpdate) -> Result<FaultSettings, String> {
        if let Some(rate) = update.fail_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("fail_rate must be between 0 and 1, got {rate}"));
            }
        }
        let mut state = self.state();
        let s = &mut state.settings;
        if let Some(rate) = update.fail_rate {
            s.fail_rate = rate;
        }
        if let Some(hang) = update.hang {
            s.hang = hang;
        }
        if let Some(drop_after) = update.drop_after {
            s.drop_after = drop_after;
        }
        Ok(*s)
    }

    /// Draws the fate of one arriving generation request.
    pub fn plan(&self) -> FaultPlan {
        let mut state = self.state();
        let s = state.settings;
        let fail = match s.fail_rate {
            r if r <= 0.0 => false,
            r if r >= 1.0 => true,
            r => state.rng.next_f64() < r,
        };
        FaultPlan {
            fail,
            hang: s.hang,
            drop_after: s.drop_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(json: &str) -> FaultUpdate {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    #[test]
    fn absent_fields_stay_and_null_clears_drop_after() {
        let faults = Faults::new(
            FaultSettings {
                fail_rate: 0.5,
                hang: true,
                drop_after: Some(3),
            },
            1,
        );
        let s = faults.update(update(r#"{"hang": false}"#));
        assert_eq!(
            s,
            Ok(FaultSettings {
                fail_rate: 0.5,
                hang: false,
                drop_after: Some(3)
            })
        );
        let s = faults.update(update(r#"{"drop_after": null, "fail_rate": 0}"#));
        assert_eq!(s, Ok(FaultSettings::default()));
    }

    #[test]
    fn bad_updates_are_refused_whole() {
        let faults = Faults::new(FaultSettings::default(), 1);
        assert!(faults
            .update(update(r#"{"fail_rate": 2, "hang": true}"#))
            .is_err());
        assert_eq!(faults.settings(), FaultSettings::default());
        assert!(serde_json::from_str::<FaultUpdate>(r#"{"fail": 1}"#).is_err());
        assert!(serde_json::from_str::<FaultUpdate>(r#"{"drop_after": -1}"#).is_err());
    }

    #[test]
    fn fail_rate_extremes_are_exact_and_middle_is_seeded() {
        let always = Faults::new(
            FaultSettings {
                fail_rate: 1.0,
                ..FaultSettings::default()
            },
            7,
        );
        assert!((0..100).all(|_| always.plan().fail));
        let never = Faults::new(FaultSettings::default(), 7);
        assert!((0..100).all(|_| !never.plan().fail));

        let draws = |seed| {
            let f = Faults::new(
                FaultSettings {
                    fail_rate: 0.3,
                    ..FaultSettings::default()
                },
                seed,
            );
            (0..1000).map(|_| f.plan().fail).collect::<Vec<_>>()
        };
        let a = draws(42);
        assert_eq!(a, draws(42));
        let failures = a.iter().filter(|f| **f).count();
        assert!((220..380).contains(&failures), "{failures}");
    }

    #[test]
    fn plan_carries_hang_and_drop() {
        let faults = Faults::new(
            FaultSettings {
                fail_rate: 0.0,
                hang: true,
                drop_after: Some(2),
            },
            0,
        );
        assert_eq!(
            faults.plan(),
            FaultPlan {
                fail: false,
                hang: true,
                drop_after: Some(2)
            }
        );
    }
}
