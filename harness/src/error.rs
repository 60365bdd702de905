//! Errors a user can fix (bad input: exit 2) and the process exit codes.

use std::fmt;

/// Process exit codes, as documented in `--help` and the README.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed.
    Passed = 0,
    /// At least one test failed.
    Failures = 1,
    /// Bad usage, suite or config: nothing was touched.
    Usage = 2,
    /// The environment could not come up (or another infrastructure error).
    Infra = 3,
    /// Interrupted by SIGINT or SIGTERM.
    Interrupted = 130,
}

/// A value that breaks a rule of its format (a step's fields, a version, a name): the message
/// says what is wrong and how to fix it; [`InputError`] adds where, when the caller knows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(s: String) -> Self {
        Invalid(s)
    }
}

impl std::ops::Deref for Invalid {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<&str> for Invalid {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl From<Invalid> for String {
    fn from(e: Invalid) -> String {
        e.0
    }
}

impl From<&str> for Invalid {
    fn from(s: &str) -> Self {
        Invalid(s.to_string())
    }
}

/// Bad input: names the file, line and column, says what is wrong and how to fix it.
#[derive(Debug, Clone)]
pub struct InputError {
    /// The file the input came from (as shown to the user); None when not from a file.
    pub file: Option<String>,
    /// 1-based; 0 when unknown.
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The source line with a caret under the column; None without a location.
    pub snippet: Option<String>,
}

impl InputError {
    /// An error with only a message; [`in_file`](Self::in_file) and [`at`](Self::at) add where.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: 0,
            column: 0,
            message: message.into(),
            snippet: None,
        }
    }

    /// Names the file the input came from.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Points at a line and column, with a snippet of the source.
    pub fn at(mut self, source: &str, line: u64, column: u64) -> Self {
        self.line = line;
        self.column = column;
        self.snippet = snippet(source, line, column);
        self
    }

    /// From a YAML (de)serialization error: location and message, without the library's prefix.
    pub fn from_yaml(e: &serde_saphyr::Error, file: &str, source: &str) -> Self {
        let msg = e.without_snippet().to_string();
        let msg = strip_location_suffix(&msg);
        let err = InputError::new(msg).in_file(file);
        match e.location() {
            Some(l) if l.line() > 0 => err.at(source, l.line(), l.column()),
            _ => err,
        }
    }
}

fn strip_location_suffix(s: &str) -> String {
    match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => s[..i].to_string(),
        _ => s.to_string(),
    }
}

/// The source line with a caret under the column.
pub fn snippet(source: &str, line: u64, column: u64) -> Option<String> {
    let text = source.lines().nth(line.checked_sub(1)? as usize)?;
    let width = line.to_string().len();
    Some(format!(
        "{:w$} |\n{line} | {text}\n{:w$} | {}^",
        "",
        "",
        " ".repeat(column.saturating_sub(1) as usize),
        w = width
    ))
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), 0) => write!(f, "{file}: {}", self.message)?,
            (Some(file), l) => write!(f, "{file}:{l}:{}: {}", self.column, self.message)?,
            (None, _) => write!(f, "{}", self.message)?,
        }
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// An error that ends the program with a given exit code.
#[derive(Debug)]
pub struct Fatal {
    /// The process exit code.
    pub exit: Exit,
    /// What went wrong, printed before exiting.
    pub error: anyhow::Error,
}

impl Fatal {
    /// Ends the program with exit code 2 (bad usage, suite or config).
    pub fn usage(e: impl Into<anyhow::Error>) -> Self {
        Fatal {
            exit: Exit::Usage,
            error: e.into(),
        }
    }
    /// Ends the program with exit code 3 (infrastructure error).
    pub fn infra(e: impl Into<anyhow::Error>) -> Self {
        Fatal {
            exit: Exit::Infra,
            error: e.into(),
        }
    }
}

impl<E: Into<anyhow::Error>> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal {
            exit: Exit::Infra,
            error: e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_column_and_caret() {
        let e = InputError::new("unknown field `nme`")
            .in_file("suites/a.yaml")
            .at("a: 1\n  nme: x\n", 2, 3);
        assert_eq!(e.to_string(), "suites/a.yaml:2:3: unknown field `nme`\n  |\n2 |   nme: x\n  |   ^");
    }
}
