//! The shapes every configuration of the workspace shares, written once: the pair of
//! constructors that read it from the environment, and a builder's setter.

/// The two constructors of a configuration read from the environment, over one read function:
/// `from_env()` (the process environment) and `from_env_with(lookup)` (any lookup, for tests
/// and secrets stores), the second through [`read`](crate::read).
///
/// Written inside the type's `impl` block, with the docs of `from_env` (which variables it
/// reads, its `# Errors`), the component named in every problem, and the read function
/// (`fn(&mut Env<'_>) -> Option<Self>`, `None` only after recording why):
///
/// ```
/// use vitals_env::Env;
///
/// /// How many rows an export writes at once.
/// pub struct Export {
///     rows: usize,
/// }
///
/// impl Export {
///     vitals_env::from_env_methods! {
///         /// Reads `EXPORT_ROWS` (default 100).
///         ///
///         /// # Errors
///         /// [`vitals_env::ConfigError`] when `EXPORT_ROWS` is not a whole number above 0.
///         component: "export",
///         read: |env: &mut Env<'_>| Some(Export { rows: env.whole("EXPORT_ROWS", 1..).unwrap_or(100) }),
///     }
/// }
///
/// let export = Export::from_env_with(vitals_env::pairs(&[("EXPORT_ROWS", "7")])).unwrap();
/// assert_eq!(export.rows, 7);
/// let err = Export::from_env_with(vitals_env::pairs(&[("EXPORT_ROWS", "0")])).err().unwrap();
/// assert_eq!(err.problems()[0].component, "export");
/// ```
#[macro_export]
macro_rules! from_env_methods {
    ($(#[$doc:meta])* component: $component:literal, read: $read:expr $(,)?) => {
        $(#[$doc])*
        pub fn from_env() -> ::core::result::Result<Self, $crate::ConfigError> {
            Self::from_env_with($crate::process_env)
        }

        #[doc = concat!(
            "Like [`from_env`](Self::from_env), but reads the variables through `lookup` (a ",
            "variable's name to its value: a test's map, a secrets store), so tests need not ",
            "touch the process environment.\n\n# Errors\n[`ConfigError`](vitals_env::ConfigError) ",
            "(component `", $component, "`), as [`from_env`](Self::from_env)."
        )]
        pub fn from_env_with<F>(lookup: F) -> ::core::result::Result<Self, $crate::ConfigError>
        where
            F: Fn(&str) -> ::core::option::Option<::std::string::String>,
        {
            $crate::read($component, &lookup, $read)
        }
    };
}

/// A builder's setters, one row a field, written as the field is declared: `name: Type` writes
/// `fn name(self, value: Type) -> Self` that sets `self.name`; `inner.name: Type` sets
/// `self.inner.name` (a builder that wraps the configuration it builds); `name: Some(Type)` sets
/// `self.name = Some(value)` (a builder whose unset fields take defaults decided at `build`);
/// `with_name => name: Type` (or `with_name => name: Some(Type)`) names the setter otherwise
/// than its field; `with_name(a: A => field_a, b: B => field_b)` sets several plain fields
/// at once (`self.field_a = a; ...`: no `inner.`, no `Some`). Rows are separated by `;`, each
/// with its docs and attributes; one call's rows are all of one form.
///
/// ```
/// #[derive(Default)]
/// pub struct Options {
///     rows: usize,
///     strict: bool,
/// }
///
/// impl Options {
///     vitals_env::setter!(
///         /// Rows written at once.
///         rows: usize;
///         /// Whether a bad row stops the export.
///         strict: bool
///     );
/// }
///
/// let options = Options::default().rows(7).strict(true);
/// assert_eq!((options.rows, options.strict), (7, true));
///
/// #[derive(Default)]
/// pub struct Builder {
///     rows: Option<usize>,
///     options: Options,
/// }
///
/// impl Builder {
///     vitals_env::setter!(
///         /// Rows written at once (default: the profile's).
///         rows: Some(usize)
///     );
///     vitals_env::setter!(
///         /// Whether a bad row stops the export.
///         options.strict: bool
///     );
/// }
/// let b = Builder::default().rows(3).strict(true);
/// assert_eq!((b.rows, b.options.strict), (Some(3), true));
///
/// impl Options {
///     vitals_env::setter!(
///         /// Rows written at once.
///         #[must_use]
///         with_rows => rows: usize
///     );
/// }
/// assert_eq!(Options::default().with_rows(2).rows, 2);
///
/// impl Options {
///     vitals_env::setter!(
///         /// Rows written at once, and whether a bad row stops the export.
///         #[must_use]
///         with_batch(rows: usize => rows, strict: bool => strict)
///     );
/// }
/// let o = Options::default().with_batch(4, true);
/// assert_eq!((o.rows, o.strict), (4, true));
/// ```
#[macro_export]
macro_rules! setter {
    // Several fields at once: `fn(arg: Type => field, ...)`.
    ($($(#[$doc:meta])* $fn:ident ( $($arg:ident : $ty:ty => $field:ident),+ $(,)? ));+ $(;)?) => {
        $(
            $(#[$doc])*
            pub fn $fn(mut self, $($arg: $ty),+) -> Self {
                $(self.$field = $arg;)+
                self
            }
        )+
    };
    ($($(#[$doc:meta])* $inner:ident . $name:ident : $ty:ty);+ $(;)?) => {
        $($crate::__setter!($(#[$doc])* $name(value: $ty) => $inner.$name = value);)+
    };
    ($($(#[$doc:meta])* $name:ident : Some($ty:ty));+ $(;)?) => {
        $($crate::__setter!($(#[$doc])* $name(value: $ty) => $name = Some(value));)+
    };
    ($($(#[$doc:meta])* $fn:ident => $name:ident : Some($ty:ty));+ $(;)?) => {
        $($crate::__setter!($(#[$doc])* $fn(value: $ty) => $name = Some(value));)+
    };
    ($($(#[$doc:meta])* $fn:ident => $name:ident : $ty:ty);+ $(;)?) => {
        $($crate::__setter!($(#[$doc])* $fn(value: $ty) => $name = value);)+
    };
    ($($(#[$doc:meta])* $name:ident : $ty:ty);+ $(;)?) => {
        $($crate::__setter!($(#[$doc])* $name(value: $ty) => $name = value);)+
    };
}

/// One setter of [`setter!`]: `fn name(self, arg: Type) -> Self` storing `value` at the path.
#[doc(hidden)]
#[macro_export]
macro_rules! __setter {
    ($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $($path:ident).+ = $value:expr) => {
        $(#[$doc])*
        pub fn $name(mut self, $arg: $ty) -> Self {
            self.$($path).+ = $value;
            self
        }
    };
}

/// A table of [`Var`](crate::Var)s, one row a variable written as `target: Kind(name, bound)`:
/// the builder setter (`builder B { ... }`) or the field (`fields C { ... }`) the value goes
/// to, then the [`Var`](crate::Var) variant and its arguments. A row whose value needs
/// converting names its own [`Set`](crate::Set) function after `=>`.
///
/// ```
/// use std::time::Duration;
/// use vitals_env::{Env, Var};
///
/// #[derive(Debug, Default, PartialEq)]
/// struct Limits { rows: usize, timeout: Duration, strict: bool, retries: u32 }
///
/// const VARS: &[Var<Limits>] = vitals_env::vars!(fields Limits {
///     rows: Usize("APP_ROWS", 1),
///     timeout: Millis("APP_TIMEOUT_MS", 1),
///     strict: Boolean("APP_STRICT"),
///     retries: Usize("APP_RETRIES", 0) => |l, n| l.retries = u32::try_from(n).unwrap_or(u32::MAX),
/// });
///
/// let lookup = vitals_env::pairs(&[("APP_ROWS", "20"), ("APP_RETRIES", "3")]);
/// let limits = Env::new("app", &lookup).apply(Limits::default(), VARS);
/// assert_eq!(limits, Limits { rows: 20, retries: 3, ..Limits::default() });
/// ```
#[macro_export]
macro_rules! vars {
    (builder $b:ty { $($set:ident: $kind:ident($($arg:expr),+) $(=> $with:expr)?),+ $(,)? }) => {
        &[$($crate::Var::$kind(
            $($arg,)+
            $crate::Set::Builder($crate::__var_target!(<$b>::$set $(, $with)?)),
        )),+]
    };
    (fields $c:ty { $($field:ident: $kind:ident($($arg:expr),+) $(=> $with:expr)?),+ $(,)? }) => {
        &[$($crate::Var::$kind(
            $($arg,)+
            $crate::Set::Field($crate::__var_target!(|c: &mut $c, v| c.$field = v $(, $with)?)),
        )),+]
    };
}

/// The row's own function when it names one, else the one the row's target stands for.
#[doc(hidden)]
#[macro_export]
macro_rules! __var_target {
    ($default:expr) => {
        $default
    };
    ($default:expr, $with:expr) => {
        $with
    };
}

/// A `Debug` impl that lists the named fields of `Type`, each as `&this.field` or, after `:`,
/// as the expression given (a masked URL, a key's id, whether a callback is set); `..` at the
/// end marks the view non-exhaustive (fields left out). For configurations that cannot derive
/// `Debug` because one field must be masked or cannot be shown.
///
/// ```
/// pub struct Settings { url: String, rows: usize, key: [u8; 4] }
///
/// vitals_env::debug_fields!(Settings as s {
///     url: vitals_env::mask_url(&s.url),
///     rows,
///     ..
/// });
///
/// let s = Settings { url: "redis://:hunter2@h/0".into(), rows: 3, key: [1, 2, 3, 4] };
/// assert_eq!(format!("{s:?}"), r#"Settings { url: "redis://:***@h/0", rows: 3, .. }"#);
/// ```
#[macro_export]
macro_rules! debug_fields {
    ($ty:ident as $this:ident { $($field:ident $(: $value:expr)?),+ $(,)? }) => {
        $crate::__debug_fields!(finish, $ty, $this, $($field $(: $value)?),+);
    };
    ($ty:ident as $this:ident { $($field:ident $(: $value:expr)?),+ , .. }) => {
        $crate::__debug_fields!(finish_non_exhaustive, $ty, $this, $($field $(: $value)?),+);
    };
}

/// The impl of [`debug_fields!`], ended by `finish` or `finish_non_exhaustive`.
#[doc(hidden)]
#[macro_export]
macro_rules! __debug_fields {
    ($finish:ident, $ty:ident, $this:ident, $($field:ident $(: $value:expr)?),+) => {
        impl ::core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                let $this = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &$crate::__var_target!($this.$field $(, $value)?)))+
                    .$finish()
            }
        }
    };
}
