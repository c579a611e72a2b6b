//! Tables of variables: a crate's plain variables listed once, each with its reader and the
//! setter its value goes to.

use std::time::Duration;

use crate::reader::Env;

/// One variable of a table that [`Env::apply`] reads: its name, how its value is read (one of
/// [`Env`]'s typed readers, with its bound) and where the value goes ([`Set`]).
///
/// ```
/// use std::time::Duration;
/// use vitals_env::{Env, Set, Var};
///
/// #[derive(Debug, Default, PartialEq)]
/// struct Limits { rows: usize, timeout: Duration, strict: bool }
///
/// const VARS: &[Var<Limits>] = &[
///     Var::Usize("APP_ROWS", 1, Set::Field(|l, v| l.rows = v)),
///     Var::Millis("APP_TIMEOUT_MS", 1, Set::Field(|l, v| l.timeout = v)),
///     Var::Boolean("APP_STRICT", Set::Field(|l, v| l.strict = v)),
/// ];
///
/// let lookup = vitals_env::pairs(&[("APP_ROWS", "20"), ("APP_STRICT", "nope")]);
/// let mut env = Env::new("app", &lookup);
/// let limits = env.apply(Limits::default(), VARS);
/// assert_eq!(limits, Limits { rows: 20, ..Limits::default() });
/// assert_eq!(env.finish(limits).unwrap_err().variables(), ["APP_STRICT"]);
/// ```
pub enum Var<C> {
    /// A whole number of at least the bound ([`Env::whole`]).
    Usize(&'static str, usize, Set<C, usize>),
    /// A whole number of at least the bound, as a `u32` ([`Env::whole`]).
    U32(&'static str, u32, Set<C, u32>),
    /// A whole number of at least the bound, whose problem says the crate's own words of what
    /// is expected (the second field) ([`Env::parse`]).
    Described(&'static str, &'static str, usize, Set<C, usize>),
    /// A whole number from the first bound to the second ([`Env::whole`]).
    UsizeIn(&'static str, usize, usize, Set<C, usize>),
    /// Milliseconds, at least the bound ([`Env::millis`]).
    Millis(&'static str, u64, Set<C, Duration>),
    /// Milliseconds from the first bound to the second, read as a whole number in that range
    /// ([`Env::whole`]).
    MillisIn(&'static str, u64, u64, Set<C, Duration>),
    /// Seconds, at least the bound ([`Env::secs`]).
    Secs(&'static str, u64, Set<C, Duration>),
    /// A boolean ([`Env::boolean`]).
    Boolean(&'static str, Set<C, bool>),
    /// A percentage from 0 to 100 ([`Env::percent`]).
    Percent(&'static str, Set<C, f64>),
}

/// Where a [`Var`]'s value goes.
pub enum Set<C, T> {
    /// A builder's setter, which takes the builder and gives it back
    /// (`PoolConfigBuilder::max_connections`).
    Builder(fn(C, T) -> C),
    /// A closure that stores the value in a field of the configuration (`|c, v| c.ttl = v`).
    Field(fn(&mut C, T)),
}

// Fn pointers are `Copy` whatever `C` and `T` are; a derive would ask it of them.
impl<C, T> Clone for Set<C, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C, T> Copy for Set<C, T> {}

impl<C, T> Set<C, T> {
    /// `target` with `read` set, if a good value was read.
    fn apply(self, target: C, read: Option<T>) -> C {
        match (self, read) {
            (_, None) => target,
            (Set::Builder(set), Some(value)) => set(target, value),
            (Set::Field(set), Some(value)) => {
                let mut target = target;
                set(&mut target, value);
                target
            }
        }
    }
}

impl<C> std::fmt::Debug for Var<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Var").field(&self.name()).finish()
    }
}

impl<C> Var<C> {
    /// The variable's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match *self {
            Var::Usize(name, ..)
            | Var::U32(name, ..)
            | Var::Described(name, ..)
            | Var::UsizeIn(name, ..)
            | Var::Millis(name, ..)
            | Var::MillisIn(name, ..)
            | Var::Secs(name, ..)
            | Var::Boolean(name, _)
            | Var::Percent(name, _) => name,
        }
    }

    /// `target` with this variable's value set, if it is set and good.
    fn read(&self, env: &mut Env<'_>, target: C) -> C {
        match *self {
            Var::Usize(name, min, set) => set.apply(target, env.whole(name, min..)),
            Var::U32(name, min, set) => set.apply(target, env.whole(name, min..)),
            Var::Described(name, expected, min, set) => {
                let at_least = |v: &str| v.parse::<usize>().ok().filter(|n| *n >= min);
                set.apply(target, env.parse(name, expected, at_least))
            }
            Var::UsizeIn(name, min, max, set) => set.apply(target, env.whole(name, min..=max)),
            Var::Millis(name, min, set) => set.apply(target, env.millis(name, min)),
            Var::MillisIn(name, min, max, set) => {
                let ms = env.whole(name, min..=max);
                set.apply(target, ms.map(Duration::from_millis))
            }
            Var::Secs(name, min, set) => set.apply(target, env.secs(name, min)),
            Var::Boolean(name, set) => set.apply(target, env.boolean(name)),
            Var::Percent(name, set) => set.apply(target, env.percent(name)),
        }
    }
}

impl Env<'_> {
    /// Reads every variable of `vars` in order and passes each good value on to its setter; an
    /// unset or bad variable leaves `target` as it was (a bad one is recorded).
    pub fn apply<C>(&mut self, target: C, vars: &[Var<C>]) -> C {
        vars.iter().fold(target, |c, var| var.read(self, c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Target {
        n: usize,
        m: u32,
        rows: usize,
        ms: Duration,
        s: Duration,
        on: bool,
        pct: f64,
        within: usize,
        ms_within: Duration,
    }

    const VARS: &[Var<Target>] = &[
        Var::Usize("N", 1, Set::Field(|t, v| t.n = v)),
        Var::U32("M", 0, Set::Builder(|t, m| Target { m, ..t })),
        Var::Described("ROWS", "rows above 0", 1, Set::Field(|t, v| t.rows = v)),
        Var::Millis("MS", 1, Set::Field(|t, v| t.ms = v)),
        Var::Secs("S", 0, Set::Field(|t, v| t.s = v)),
        Var::Boolean("ON", Set::Field(|t, v| t.on = v)),
        Var::Percent("PCT", Set::Field(|t, v| t.pct = v)),
        Var::UsizeIn("WITHIN", 1, 9, Set::Field(|t, v| t.within = v)),
        Var::MillisIn("MS_WITHIN", 1, 9, Set::Field(|t, v| t.ms_within = v)),
    ];

    /// The target read from these variables, and the problems found.
    fn read(vars: &[(&str, &str)]) -> (Target, Result<(), crate::ConfigError>) {
        let lookup = crate::pairs(vars);
        let mut env = Env::new("t", &lookup);
        let t = env.apply(Target::default(), VARS);
        (t, env.finish(()))
    }

    #[test]
    fn every_kind_is_read_and_set() {
        let (t, problems) = read(&[
            ("N", "3"),
            ("M", "4"),
            ("ROWS", "5"),
            ("MS", "6"),
            ("S", "7"),
            ("ON", "yes"),
            ("PCT", "50%"),
            ("WITHIN", "9"),
            ("MS_WITHIN", "2"),
        ]);
        assert_eq!(problems, Ok(()));
        assert_eq!(
            t,
            Target {
                n: 3,
                m: 4,
                rows: 5,
                ms: Duration::from_millis(6),
                s: Duration::from_secs(7),
                on: true,
                pct: 50.0,
                within: 9,
                ms_within: Duration::from_millis(2),
            }
        );
    }

    #[test]
    fn bad_values_are_recorded_in_table_order_and_leave_the_target() {
        let (t, problems) = read(&[
            ("PCT", "200"),
            ("N", "0"),
            ("ROWS", "0"),
            ("WITHIN", "10"),
            ("MS_WITHIN", "0"),
        ]);
        assert_eq!(t, Target::default());
        let err = problems.unwrap_err();
        assert_eq!(err.variables(), ["N", "ROWS", "PCT", "WITHIN", "MS_WITHIN"]);
        let text = err.to_string();
        assert!(text.contains("ROWS=\"0\": expected rows above 0"), "{text}");
        assert!(
            text.contains("WITHIN=\"10\": expected a whole number from 1 to 9"),
            "{text}"
        );
        assert_eq!(format!("{:?}", VARS[0]), "Var(\"N\")");
    }
}
