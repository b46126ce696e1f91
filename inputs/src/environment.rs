//! The `build-environment` file: orb writes the sanitised process environment plus its own keys
//! (OS, ARCH, ORB_DATA, SWITCH_PATH, ...) as newline-separated `KEY=VALUE` lines.

use std::collections::BTreeMap;

/// Variables by name. Sorted, so comparisons and renderings are deterministic.
pub type Environment = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    #[error("build-environment line {line}: not valid UTF-8")]
    NotUtf8 { line: usize },
    #[error("build-environment line {line}: expected KEY=VALUE, found {text:?}")]
    Malformed { line: usize, text: String },
}

/// Parses `KEY=VALUE` lines. The value is everything after the first `=` (it may contain `=`),
/// empty lines are skipped, `\r\n` endings are accepted. A key given twice keeps its last value,
/// as a shell sourcing the file would.
pub fn parse_environment(input: &[u8]) -> Result<Environment, EnvironmentError> {
    let mut env = Environment::new();
    for (index, raw) in input.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() {
            continue;
        }
        let text = std::str::from_utf8(raw).map_err(|_| EnvironmentError::NotUtf8 { line })?;
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() && !key.contains(char::is_whitespace) => {
                env.insert(key.to_owned(), value.to_owned());
            }
            _ => return Err(EnvironmentError::Malformed { line, text: truncate(text) }),
        }
    }
    Ok(env)
}

/// Keeps error messages short when a binary blob is uploaded by mistake.
pub(crate) fn truncate(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_orb_output() {
        // orb joins with "\n" and writes no trailing newline.
        let env = parse_environment(
            b"HOME=/home/builder\nPATH=/bin:/usr/bin\nOS=linux\nORB_DATA=2\nSWITCH_PATH=/tmp/x",
        )
        .expect("valid");
        assert_eq!(env.len(), 5);
        assert_eq!(env["PATH"], "/bin:/usr/bin");
        assert_eq!(env["SWITCH_PATH"], "/tmp/x");
    }

    #[test]
    fn value_may_contain_equals_and_be_empty() {
        let env = parse_environment(b"OPTS=a=b=c\nEMPTY=\n").expect("valid");
        assert_eq!(env["OPTS"], "a=b=c");
        assert_eq!(env["EMPTY"], "");
    }

    #[test]
    fn skips_empty_lines_and_crlf() {
        let env = parse_environment(b"\nA=1\r\n\r\n\nB=2\n\n").expect("valid");
        assert_eq!(env.into_iter().collect::<Vec<_>>(), [("A".into(), "1".into()), ("B".into(), "2".into())]);
    }

    #[test]
    fn last_duplicate_wins() {
        let env = parse_environment(b"A=1\nA=2").expect("valid");
        assert_eq!(env["A"], "2");
    }

    #[test]
    fn reports_malformed_lines_with_numbers() {
        assert_eq!(
            parse_environment(b"A=1\n\nno equals sign\n"),
            Err(EnvironmentError::Malformed { line: 3, text: "no equals sign".into() })
        );
        assert_eq!(
            parse_environment(b"=value"),
            Err(EnvironmentError::Malformed { line: 1, text: "=value".into() })
        );
        assert_eq!(parse_environment(b"A=1\nB=\xff"), Err(EnvironmentError::NotUtf8 { line: 2 }));
    }

    #[test]
    fn empty_input_is_empty_environment() {
        assert!(parse_environment(b"").expect("valid").is_empty());
    }

    #[test]
    fn long_malformed_lines_are_truncated_in_errors() {
        let line = "x".repeat(500);
        let Err(EnvironmentError::Malformed { text, .. }) = parse_environment(line.as_bytes()) else {
            panic!("expected an error");
        };
        assert_eq!(text.len(), 83);
    }
}
