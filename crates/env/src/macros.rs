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

/// A builder's setters, each storing its argument in the field of its name and returning the
/// builder: `name(arg: Type)` sets `self.name`, `inner.name(arg: Type)` sets
/// `self.inner.name` (a builder that wraps the configuration it builds). One call writes one
/// setter or several, separated by `;`.
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
///         rows(n: usize);
///         /// Whether a bad row stops the export.
///         strict(yes: bool)
///     );
/// }
///
/// let options = Options::default().rows(7).strict(true);
/// assert_eq!((options.rows, options.strict), (7, true));
/// ```
#[macro_export]
macro_rules! setter {
    ($($(#[$doc:meta])* $inner:ident . $name:ident($arg:ident: $ty:ty));+ $(;)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$inner.$name = $arg;
                self
            }
        )+
    };
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty));+ $(;)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $arg: $ty) -> Self {
                self.$name = $arg;
                self
            }
        )+
    };
}
