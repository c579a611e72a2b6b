//! A secret kept in a configuration that derives `Debug`.

use std::fmt;

use crate::problem::MASK;

/// A value that `Debug` shows as [`MASK`] (`"***"`): a key kept in a configuration, so the
/// configuration can derive `Debug` and still never print it.
///
/// ```
/// use vitals_env::Secret;
///
/// #[derive(Debug)]
/// struct Keys { id: &'static str, key: Secret<[u8; 4]> }
///
/// let keys = Keys { id: "k1", key: Secret::new([1, 2, 3, 4]) };
/// assert_eq!(format!("{keys:?}"), r#"Keys { id: "k1", key: "***" }"#);
/// assert_eq!(keys.key.expose(), &[1, 2, 3, 4]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Keeps `value` out of `Debug`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The value itself, for the code that uses it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(MASK, f)
    }
}
