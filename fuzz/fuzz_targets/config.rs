//! Configuration parsing never panics; an error names a variable in every problem.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vitals::Config;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Lines of NAME=VALUE; the names are whatever the input says (real ones are likely
    // found quickly from the dictionary-free mutations of a seed corpus).
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let lookup = |name: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Err(e) = Config::from_env_with(lookup) {
        assert!(!e.problems().is_empty());
        for p in e.problems() {
            assert!(
                vars.iter().any(|(k, _)| p.message.contains(k.as_str())),
                "a problem names no variable that was set: {p}"
            );
        }
    }
});
