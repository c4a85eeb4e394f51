//! What loading reports instead of a [`Settings`](super::Settings): every problem at once.

use std::fmt;

/// One thing wrong with the configuration, addressed by its full dotted key
/// (`stores.acme.b2b.base_url`) or, for a file that cannot be read or parsed, by the file's path.
///
/// Messages never contain the value of a secret, so both `Display` and `Debug` are safe to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found while loading, sorted by key; never empty when returned by the loader.
///
/// Displays as one `key: message` line per problem so that `check-config` can print it as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub problems: Vec<ConfigProblem>,
}

impl ConfigErrors {
    pub(super) fn single(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            problems: vec![ConfigProblem {
                key: key.into(),
                message: message.into(),
            }],
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
