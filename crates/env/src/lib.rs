//! Configuration from the environment, shared by every vitals crate.
//!
//! Each crate reads its variables through an [`Env`]: a reader over any lookup (the process
//! environment, a test's map, a secrets store) that parses typed values ([`Env::whole`],
//! [`Env::millis`], [`Env::secs`], [`Env::boolean`], [`Env::percent`], [`Env::choice`],
//! [`Env::url`]) and collects a [`Problem`] for every bad one instead of stopping at the first.
//! [`Env::finish`] turns them into one [`ConfigError`]; the facade merges the crates' errors
//! with [`ConfigError::merge`], so a host sees every bad variable of every crate at once, each
//! still naming its crate, variable, value and what was expected.
//!
//! Secrets never reach a problem: [`Env::secret_problem`] records a masked value, and
//! [`mask_url`] hides the password of a URL (in its user information and in a `password=`
//! query parameter) before a URL is shown; a value that is not shaped like a URL is shown by
//! [`mask_bad_url`] as its scheme at most, since a password in it cannot be found.
//!
//! The shapes every crate's configuration shares are here once: [`from_env_methods!`] writes
//! a configuration's `from_env` and `from_env_with` over one read function, a table of
//! [`Var`]s lists a crate's plain variables with their readers and setters ([`Env::apply`]),
//! [`Problems`] collects the problems a builder finds in values set in code, [`setter!`] writes
//! a builder's setters, and [`Secret`] keeps a key out of a derived `Debug`. [`vars!`] writes a
//! table as `field: Kind("VARIABLE", bound)` rows, and [`debug_fields!`] a `Debug` that masks
//! what must not be shown (a URL's password, a callback) and lists the rest by name.
//!
//! What it is not: a place for any crate's defaults or rules. It knows no variable names; the
//! crates own those.
//!
//! # Example
//! ```
//! use std::time::Duration;
//! use vitals_env::Env;
//!
//! # fn example() -> Result<(), vitals_env::ConfigError> {
//! let lookup = |name: &str| match name {
//!     "APP_POOL_MAX" => Some("20".to_owned()),
//!     "APP_TIMEOUT_MS" => Some("soon".to_owned()),
//!     "APP_VERBOSE" => Some("maybe".to_owned()),
//!     _ => None,
//! };
//! let mut env = Env::new("app", &lookup);
//! let max = env.whole::<u32>("APP_POOL_MAX", 1..=1000).unwrap_or(10);
//! let timeout = env.millis("APP_TIMEOUT_MS", 1).unwrap_or(Duration::from_secs(1));
//! let verbose = env.boolean("APP_VERBOSE").unwrap_or(false);
//! let err = env.finish((max, timeout, verbose)).unwrap_err();
//! assert_eq!(err.problems().len(), 2);
//! assert_eq!(err.problems()[0].variable, "APP_TIMEOUT_MS");
//! assert!(err.to_string().contains("APP_VERBOSE=\"maybe\": expected true or false"));
//! # Ok(()) }
//! ```
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod macros;
mod problem;
mod reader;
mod secret;
mod table;
mod url;

pub use problem::{ConfigError, Problem, Problems, MASK};
pub use reader::{pairs, process_env, read, Env, NOT_UTF8};
pub use secret::Secret;
pub use table::{Set, Var};
pub use url::{encode_userinfo, mask_bad_url, mask_url};
