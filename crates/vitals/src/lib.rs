//! vitals: the database layer of a school-health service, fast, observable and safe with PHI.
//!
//! This facade composes the four component crates for a host service and holds the only code
//! that knows the healthcare domain ([`health`]). Each component is re-exported under a short
//! name so a host needs one dependency:
//!
//! - [`pool`] (`vitals-pool`): pool configuration, retry of transient errors, a pool monitor.
//! - [`querylog`] (`vitals-querylog`): PHI-safe query logging, fingerprints, slow tiers, N+1.
//! - [`cache`] (`vitals-cache`): L1 in-process LRU over L2 Redis, coherent and encrypted.
//! - [`import`] (`vitals-import`): streaming bulk import with one-query validation.
//!
//! What it leaves to others: HTTP serving beyond the health router, authentication, and the
//! schema of any domain other than school health.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub use vitals_cache as cache;
pub use vitals_import as import;
pub use vitals_pool as pool;
pub use vitals_querylog as querylog;

pub mod health;
