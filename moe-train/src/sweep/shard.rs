//! Splitting a sweep across processes: `--shard I/N` (0-based) runs the variants whose name
//! hashes to `I` modulo `N`, so a variant's shard depends on its name alone, never on the
//! order or number of the other variants. Array jobs of Slurm and Grid Engine set the shard
//! through their environment (docs/sweep.md, "Sweeps on a cluster").

use std::fmt;
use std::str::FromStr;

use anyhow::bail;

/// Shard `index` of `count`, numbered from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `0..count`.
    pub index: usize,
    /// How many shards the sweep is split into (≥ 1).
    pub count: usize,
}

impl Shard {
    /// Whether this shard runs the variant called `name`.
    pub fn owns(&self, name: &str) -> bool {
        owner(name, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = "give I/N: shard I of N, numbered from 0 (the shards of 3 are 0/3, 1/3, 2/3)";
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not I/N; {usage}"))?;
        let parse = |x: &str| x.trim().parse::<usize>().ok();
        let (Some(index), Some(count)) = (parse(i), parse(n)) else {
            return Err(format!("`{s}` is not two whole numbers I/N; {usage}"));
        };
        if count == 0 {
            return Err(format!("`{s}` has no shards (N = 0); {usage}"));
        }
        if index >= count {
            return Err(format!(
                "`{s}`: shard {index} does not exist among {count}; {usage}"
            ));
        }
        Ok(Shard { index, count })
    }
}

/// FNV-1a, 64 bits (Fowler, Noll, Vo; the offset basis and prime of the reference
/// implementation): stable across platforms, releases and runs, unlike `std`'s hasher.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The shard (of `count`) that runs the variant called `name`.
pub fn owner(name: &str, count: usize) -> usize {
    (fnv1a64(name.as_bytes()) % count.max(1) as u64) as usize
}

/// The shard to run: `--shard` if given, else one from an array job's environment (read
/// through `var`), else none (the whole sweep). The second value says where it came from.
pub fn resolve(
    given: Option<Shard>,
    var: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<(Shard, String)>> {
    if let Some(shard) = given {
        return Ok(Some((shard, "--shard".into())));
    }
    if let Some(id) = var("SLURM_ARRAY_TASK_ID") {
        let shard = from_task_range(
            &var,
            ("SLURM_ARRAY_TASK_ID", &id),
            "SLURM_ARRAY_TASK_MIN",
            "SLURM_ARRAY_TASK_STEP",
            Count::Given("SLURM_ARRAY_TASK_COUNT"),
        )?;
        return Ok(Some((shard, format!("Slurm array task {id}"))));
    }
    // Grid Engine sets SGE_TASK_ID to "undefined" in jobs that are not arrays.
    if let Some(id) = var("SGE_TASK_ID").filter(|v| v != "undefined") {
        let shard = from_task_range(
            &var,
            ("SGE_TASK_ID", &id),
            "SGE_TASK_FIRST",
            "SGE_TASK_STEPSIZE",
            Count::FromLast("SGE_TASK_LAST"),
        )?;
        return Ok(Some((shard, format!("Grid Engine array task {id}"))));
    }
    Ok(None)
}

/// How an array job says how many tasks it has.
enum Count {
    /// A variable holding the number of tasks.
    Given(&'static str),
    /// A variable holding the last task id.
    FromLast(&'static str),
}

/// Shard `(id − first) / step` of the array's task count; ids must form a range with a
/// constant step (`--array=0-9`, `1-10`, `0-18:2`), so that every shard has one task.
fn from_task_range(
    var: &impl Fn(&str) -> Option<String>,
    (id_name, id): (&str, &str),
    first_name: &str,
    step_name: &str,
    count: Count,
) -> anyhow::Result<Shard> {
    let number = |name: &str, value: &str| -> anyhow::Result<u64> {
        value.trim().parse::<u64>().map_err(|_| {
            anyhow::anyhow!(
                "{name}={value:?} is not a whole number; pass --shard I/N to choose the shard"
            )
        })
    };
    let required = |name: &str| -> anyhow::Result<u64> {
        match var(name) {
            Some(v) => number(name, &v),
            None => bail!(
                "{id_name} is set but {name} is not, so the number of shards is unknown; pass \
                 --shard I/N"
            ),
        }
    };
    let id = number(id_name, id)?;
    let first = var(first_name).map_or(Ok(0), |v| number(first_name, &v))?;
    let step = var(step_name)
        .map_or(Ok(1), |v| number(step_name, &v))?
        .max(1);
    let count = match count {
        Count::Given(name) => required(name)?,
        Count::FromLast(name) => {
            let last = required(name)?;
            anyhow::ensure!(
                last >= first,
                "{name}={last} is below {first_name}={first}; pass --shard I/N"
            );
            (last - first) / step + 1
        }
    };
    let offset = id.checked_sub(first).filter(|o| o % step == 0);
    match offset.map(|o| o / step).filter(|&i| i < count) {
        Some(index) => Ok(Shard {
            index: index as usize,
            count: count as usize,
        }),
        None => bail!(
            "{id_name}={id} does not fall on a shard of {count} (first task {first}, step \
             {step}): submit the array as one range with a constant step (e.g. --array=0-{}), \
             or pass --shard I/N",
            count.saturating_sub(1)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn fnv1a64_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_variant_has_exactly_one_shard_whatever_the_others() {
        let names = ["dense", "switch-e2", "switch-e4", "switch-e4-cf1", "x"];
        for count in 1..6 {
            for name in names {
                let owners: Vec<usize> = (0..count)
                    .filter(|&index| Shard { index, count }.owns(name))
                    .collect();
                assert_eq!(owners, [owner(name, count)], "{name} among {count}");
            }
        }
        // Values a re-run relies on (FNV-1a of the name mod 3).
        assert_eq!(
            names.map(|n| owner(n, 3)),
            [0, 1, 1, 2, 2],
            "shard assignment changed: finished sweeps would move between shards"
        );
    }

    #[test]
    fn parses_and_rejects_shard_arguments() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for (bad, says) in [
            ("3/3", "does not exist"),
            ("1/0", "no shards"),
            ("1", "not I/N"),
            ("a/3", "whole numbers"),
            ("-1/3", "whole numbers"),
        ] {
            let err = bad.parse::<Shard>().unwrap_err();
            assert!(err.contains(says) && err.contains("from 0"), "{bad}: {err}");
        }
    }

    #[test]
    fn shard_comes_from_the_flag_then_slurm_then_grid_engine() {
        let given = Shard { index: 1, count: 2 };
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "12"),
            ("SLURM_ARRAY_TASK_MIN", "10"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(resolve(Some(given), env(&slurm)).unwrap().unwrap().0, given);
        let (shard, from) = resolve(None, env(&slurm)).unwrap().unwrap();
        assert_eq!(
            (shard, from.as_str()),
            (Shard { index: 2, count: 4 }, "Slurm array task 12")
        );
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(
            resolve(None, env(&stepped)).unwrap().unwrap().0,
            Shard { index: 2, count: 3 }
        );
        let sge = [
            ("SGE_TASK_ID", "3"),
            ("SGE_TASK_FIRST", "1"),
            ("SGE_TASK_LAST", "3"),
            ("SGE_TASK_STEPSIZE", "1"),
        ];
        assert_eq!(
            resolve(None, env(&sge)).unwrap().unwrap().0,
            Shard { index: 2, count: 3 }
        );
        assert_eq!(
            resolve(None, env(&[("SGE_TASK_ID", "undefined")])).unwrap(),
            None
        );
        assert_eq!(resolve(None, env(&[])).unwrap(), None);
    }

    #[test]
    fn array_environments_that_name_no_shard_are_errors() {
        for (pairs, says) in [
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "7"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                ][..],
                "does not fall on a shard of 3",
            ),
            (
                &[("SLURM_ARRAY_TASK_ID", "1")][..],
                "SLURM_ARRAY_TASK_COUNT is not",
            ),
            (
                &[
                    ("SLURM_ARRAY_TASK_ID", "x"),
                    ("SLURM_ARRAY_TASK_COUNT", "3"),
                ][..],
                "not a whole number",
            ),
            (
                &[
                    ("SGE_TASK_ID", "2"),
                    ("SGE_TASK_FIRST", "3"),
                    ("SGE_TASK_LAST", "5"),
                ][..],
                "does not fall on a shard",
            ),
        ] {
            let err = resolve(None, env(pairs)).unwrap_err().to_string();
            assert!(
                err.contains(says) && err.contains("--shard"),
                "{pairs:?}: {err}"
            );
        }
    }
}
