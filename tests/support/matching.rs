//! Comparing answers with expectations: captures, the normaliser of YAML bodies, and the
//! checks of volatile values. Everything not named here is compared byte for byte.

use std::collections::BTreeMap;

use super::conv::{show, Piece, Text, YamlLine};

/// What distinguishes one server's answers from another's, beyond the volatile keys.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// The beanstalkd version whose behaviour the server has (coolbeans follows 1.13).
    pub version: (u32, u32),
    /// beanstalkd 1.12 writes the string values of [`QUOTED_KEYS`] bare; 1.13 quotes them.
    /// When set, the normaliser quotes bare values, so that the 1.13 form is what is compared.
    pub quote_bare_strings: bool,
    /// beanstalkd (1.12 and 1.13) loses a TTR whose timer fires in the very microsecond of the
    /// job's deadline: its clock has microsecond resolution, `conn_timeout` then finds the job
    /// not yet expired (`deadline_at >= nanoseconds()`) and does not schedule the holder's
    /// connection again, so the job stays reserved until the holder sends something. When set,
    /// the `nudge` step sends an unknown command on the holder's connection (which counts in no
    /// statistic) after the deadline; otherwise `nudge` does nothing.
    pub loses_ttr_timers: bool,
}

/// YAML keys whose values are strings, quoted by beanstalkd 1.13 (`name: "default"`).
pub const QUOTED_KEYS: &[&str] = &["name", "tube", "version", "hostname", "os", "platform"];

/// Bindings of `$name` captures: a bijection between names and numbers.
#[derive(Debug, Clone, Default)]
pub struct Captures {
    by_name: BTreeMap<String, Vec<u8>>,
}

impl Captures {
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.by_name.get(name).map(Vec::as_slice)
    }

    fn bind(&mut self, name: &str, value: &[u8]) -> Result<(), String> {
        if let Some(bound) = self.by_name.get(name) {
            if bound.as_slice() != value {
                return Err(format!("${name} is {} but here it is {}", show(bound), show(value)));
            }
            return Ok(());
        }
        if let Some((other, _)) = self.by_name.iter().find(|(_, v)| v.as_slice() == value) {
            return Err(format!("${name} would be {}, which ${other} already is", show(value)));
        }
        self.by_name.insert(name.to_string(), value.to_vec());
        Ok(())
    }

    /// The bytes to send for `text`; every capture in it must be bound.
    pub fn substitute(&self, text: &Text) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for piece in &text.pieces {
            match piece {
                Piece::Bytes(b) => out.extend_from_slice(b),
                Piece::Capture(name) => out.extend_from_slice(self.get(name).ok_or_else(|| format!("${name} is used before it is bound"))?),
            }
        }
        Ok(out)
    }
}

/// Matches `actual` against `expected`, binding new captures in `captures` only on success.
pub fn match_text(expected: &Text, actual: &[u8], captures: &mut Captures) -> Result<(), String> {
    let mut trial = captures.clone();
    let mut rest = actual;
    for piece in &expected.pieces {
        match piece {
            Piece::Bytes(b) => {
                rest = rest.strip_prefix(b.as_slice()).ok_or_else(|| differs(expected, actual))?;
            }
            Piece::Capture(name) => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 {
                    return Err(differs(expected, actual));
                }
                trial.bind(name, &rest[..digits])?;
                rest = &rest[digits..];
            }
        }
    }
    if !rest.is_empty() {
        return Err(differs(expected, actual));
    }
    *captures = trial;
    Ok(())
}

fn differs(expected: &Text, actual: &[u8]) -> String {
    format!("expected `{}`, got `{}`", show_text(expected), show(actual))
}

/// Renders an expectation as it is written in scripts.
pub fn show_text(text: &Text) -> String {
    text.pieces
        .iter()
        .map(|piece| match piece {
            Piece::Bytes(b) => show(b),
            Piece::Capture(name) => format!("${name}"),
        })
        .collect()
}

/// Splits a YAML body into its lines and normalises them for `dialect`; every line of a
/// beanstalkd YAML document ends in `\n`.
pub fn yaml_lines(body: &[u8], dialect: Dialect) -> Result<Vec<Vec<u8>>, String> {
    let Some(content) = body.strip_suffix(b"\n") else {
        return Err(format!("the YAML body does not end in \\n: `{}`", show(body)));
    };
    Ok(content.split(|b| *b == b'\n').map(|line| normalise_line(line, dialect)).collect())
}

fn normalise_line(line: &[u8], dialect: Dialect) -> Vec<u8> {
    if !dialect.quote_bare_strings {
        return line.to_vec();
    }
    let Some(colon) = line.windows(2).position(|w| w == b": ") else {
        return line.to_vec();
    };
    let (key, value) = (&line[..colon], &line[colon + 2..]);
    let quoted_key = QUOTED_KEYS.iter().any(|k| k.as_bytes() == key);
    if !quoted_key || value.starts_with(b"\"") {
        return line.to_vec();
    }
    [key, b": \"", value, b"\""].concat()
}

/// Compares normalised YAML lines with the expected ones; the error names the first
/// differing line.
pub fn match_yaml(expected: &[YamlLine], actual: &[Vec<u8>], captures: &mut Captures) -> Result<(), String> {
    for (index, want) in expected.iter().enumerate() {
        let Some(got) = actual.get(index) else {
            return Err(format!("body line {}: expected `{}`, the body ended", index + 1, show_yaml_line(want)));
        };
        match_yaml_line(want, got, captures).map_err(|e| format!("body line {}: {e}", index + 1))?;
    }
    if let Some(extra) = actual.get(expected.len()) {
        return Err(format!("body line {}: expected the end of the body, got `{}`", expected.len() + 1, show(extra)));
    }
    Ok(())
}

fn match_yaml_line(want: &YamlLine, got: &[u8], captures: &mut Captures) -> Result<(), String> {
    let (key, lo, hi) = match want {
        YamlLine::Exact(text) => return match_text(text, got, captures),
        YamlLine::Any { key } => (key, None, None),
        YamlLine::Range { key, lo, hi } => (key, Some(*lo), Some(*hi)),
    };
    let mismatch = || format!("expected `{}`, got `{}`", show_yaml_line(want), show(got));
    let value = got.strip_prefix(key.as_bytes()).and_then(|r| r.strip_prefix(b": ")).ok_or_else(mismatch)?;
    let value = std::str::from_utf8(value).map_err(|_| mismatch())?;
    if !well_formed(key, value) {
        return Err(format!("{} (not a well-formed `{key}`)", mismatch()));
    }
    if let (Some(lo), Some(hi)) = (lo, hi) {
        let n: u64 = value.parse().map_err(|_| mismatch())?;
        if n < lo || n > hi {
            return Err(mismatch());
        }
    }
    Ok(())
}

/// The shape a volatile value must have, whatever it is.
fn well_formed(key: &str, value: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match key {
        "rusage-utime" | "rusage-stime" => value.split_once('.').is_some_and(|(secs, micros)| digits(secs) && digits(micros) && micros.len() == 6),
        "version" | "hostname" | "os" | "platform" => value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
        "id" => !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic() && b != b'"'),
        _ => digits(value),
    }
}

fn show_yaml_line(line: &YamlLine) -> String {
    match line {
        YamlLine::Exact(text) => show_text(text),
        YamlLine::Any { key } => format!("{key}: *"),
        YamlLine::Range { key, lo, hi } => format!("{key}: {lo}..{hi}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::conv::parse_text;

    #[test]
    fn captures_bind_once_and_stay_distinct() {
        let mut captures = Captures::default();
        match_text(&parse_text("INSERTED $a").unwrap(), b"INSERTED 7", &mut captures).unwrap();
        assert!(match_text(&parse_text("INSERTED $a").unwrap(), b"INSERTED 8", &mut captures).is_err());
        assert!(match_text(&parse_text("INSERTED $b").unwrap(), b"INSERTED 7", &mut captures).is_err());
        match_text(&parse_text("INSERTED $b").unwrap(), b"INSERTED 8", &mut captures).unwrap();
        assert_eq!(captures.get("b"), Some(&b"8"[..]));
    }

    #[test]
    fn bare_strings_are_quoted_only_for_the_old_dialect() {
        let old = Dialect { version: (1, 12), quote_bare_strings: true, loses_ttr_timers: true };
        let new = Dialect { version: (1, 13), quote_bare_strings: false, loses_ttr_timers: false };
        assert_eq!(yaml_lines(b"---\nname: default\nstate: ready\n", old).unwrap()[1], b"name: \"default\"");
        assert_eq!(yaml_lines(b"---\nname: default\n", new).unwrap()[1], b"name: default");
        assert_eq!(yaml_lines(b"---\nstate: ready\n", old).unwrap()[1], b"state: ready");
    }
}
