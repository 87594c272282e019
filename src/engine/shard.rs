//! Which part of a run's load this process sends when the run is split over several processes
//! or machines (`kvchaos run --shard I/N`): request `k` of the global open-loop schedule goes
//! to shard `k mod N`, closed-loop users and in-flight caps are split as evenly as integers
//! allow. Shard `i` of `n` numbers its own arrivals `j = 0, 1, ...`, global arrival `j·n + i`.
//!
//! Pure arithmetic; the engine applies it, the run decides what else a shard does.

use std::fmt;
use std::str::FromStr;

/// Shard `index` of `count` (`0 <= index < count`); `0/1` is a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: u64,
    /// Shards in all.
    pub count: u64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// The whole run in one process.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; an error names the fix.
    pub fn new(index: u64, count: u64) -> Result<Shard, String> {
        if count == 0 {
            return Err("the shard count must be at least 1, e.g. --shard 0/4".to_owned());
        }
        if index >= count {
            return Err(format!(
                "shard index {index} is not below the shard count {count}: shards are numbered 0 to {}, e.g. --shard 0/{count}",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// The shard from `--shard I/N`, or from `--shards N` with the index in `env_index` (a
    /// Kubernetes Indexed Job's `JOB_COMPLETION_INDEX`); the whole run when neither is given.
    pub fn resolve(
        shard: Option<Shard>,
        shards: Option<u64>,
        env_index: Option<&str>,
    ) -> Result<Shard, String> {
        match (shard, shards) {
            (Some(s), _) => Ok(s),
            (None, None) => Ok(Shard::WHOLE),
            (None, Some(n)) => {
                let Some(raw) = env_index else {
                    return Err(format!(
                        "--shards {n} needs the shard index in JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job): set it, or give --shard I/{n}"
                    ));
                };
                let i = raw.trim().parse().map_err(|_| {
                    format!(
                        "JOB_COMPLETION_INDEX \"{raw}\" is not a shard index: expected 0 to {}",
                        n.saturating_sub(1)
                    )
                })?;
                Shard::new(i, n)
            }
        }
    }

    /// A run split over more than one shard.
    pub fn is_split(self) -> bool {
        self.count > 1
    }

    /// The shard that runs faults, crons, drivers and checks.
    pub fn is_lead(self) -> bool {
        self.index == 0
    }

    /// Global arrival number of this shard's `local`-th arrival.
    pub fn global(self, local: u64) -> u64 {
        local * self.count + self.index
    }

    /// How many of the global arrivals `0..global` are this shard's.
    pub fn local_count(self, global: u64) -> u64 {
        if global <= self.index {
            0
        } else {
            (global - self.index).div_ceil(self.count)
        }
    }

    /// This shard's share of `n` users (or of an in-flight cap): `n / N`, plus one for the
    /// first `n mod N` shards.
    pub fn share(self, n: usize) -> usize {
        let count = self.count as usize;
        n / count + usize::from((self.index as usize) < n % count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("invalid shard \"{s}\": expected INDEX/COUNT, e.g. --shard 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let i = i.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(i, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_global_schedule() {
        let n = 3;
        let shards: Vec<Shard> = (0..n).map(|i| Shard { index: i, count: n }).collect();
        for total in [0u64, 1, 2, 3, 10, 1000, 1001] {
            let sum: u64 = shards.iter().map(|s| s.local_count(total)).sum();
            assert_eq!(sum, total, "total {total}");
            for s in &shards {
                let mine = (0..total).filter(|k| k % n == s.index).count() as u64;
                assert_eq!(s.local_count(total), mine);
                for j in 0..s.local_count(total) {
                    assert_eq!(s.global(j) % n, s.index);
                    assert!(s.global(j) < total);
                }
            }
        }
    }

    #[test]
    fn users_split_evenly_and_add_up() {
        for users in [0usize, 1, 2, 5, 64] {
            let sum: usize = (0..4)
                .map(|i| Shard { index: i, count: 4 }.share(users))
                .sum();
            assert_eq!(sum, users);
        }
        assert_eq!(Shard { index: 0, count: 4 }.share(5), 2);
        assert_eq!(Shard { index: 3, count: 4 }.share(5), 1);
        assert_eq!(Shard::WHOLE.share(7), 7);
    }

    #[test]
    fn parses_index_over_count_and_names_the_fix() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        let e = |s: &str| s.parse::<Shard>().err().unwrap_or_default();
        assert!(e("4/4").contains("numbered 0 to 3"), "{}", e("4/4"));
        assert!(e("1/0").contains("at least 1"));
        assert!(e("two").contains("invalid shard \"two\""));
        assert!(e("-1/4").contains("INDEX/COUNT"));
    }

    #[test]
    fn shards_n_takes_the_index_from_the_job() {
        let four = Shard { index: 2, count: 4 };
        assert_eq!(Shard::resolve(None, Some(4), Some("2")), Ok(four));
        assert_eq!(Shard::resolve(Some(four), Some(9), None), Ok(four));
        assert_eq!(Shard::resolve(None, None, Some("3")), Ok(Shard::WHOLE));
        let e = Shard::resolve(None, Some(4), None)
            .err()
            .unwrap_or_default();
        assert!(e.contains("JOB_COMPLETION_INDEX"), "{e}");
        let e = Shard::resolve(None, Some(4), Some("x"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("\"x\""), "{e}");
        let e = Shard::resolve(None, Some(4), Some("4"))
            .err()
            .unwrap_or_default();
        assert!(e.contains("numbered 0 to 3"), "{e}");
    }
}
