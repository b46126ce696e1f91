//! The line formats: `system-packages` and `build-environment`. Whatever parses is written
//! back in one format and must parse to the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use petrel_inputs::environment::parse_environment;
use petrel_inputs::system_packages::parse_system_packages;

fuzz_target!(|data: &[u8]| {
    if let Ok(packages) = parse_system_packages(data) {
        // Names never contain `=` (a line with one is split there), versions no whitespace.
        let text: String = packages.packages.iter().map(|(n, v)| format!("{n}={v}\n")).collect();
        let again = parse_system_packages(text.as_bytes()).expect("re-parses");
        assert_eq!(again.packages, packages.packages);
    }
    if let Ok(env) = parse_environment(data) {
        // CRLF endings: a value may itself end in `\r`, and only one `\r` is stripped per line.
        let text: String = env.iter().map(|(k, v)| format!("{k}={v}\r\n")).collect();
        assert_eq!(parse_environment(text.as_bytes()).as_ref(), Ok(&env));
    }
});
