//! Import record specs for the healthcare types (issue 6; in progress).
