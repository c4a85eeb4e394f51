//! A small accumulating reader over the merged `config::Value` tree.
//!
//! Serde derive stops at the first error; operators fixing a config want the whole list. So each
//! table is read key by key: a bad or missing value becomes a [`ConfigProblem`] with its full
//! dotted path and the caller carries on with the next key.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::num::{NonZeroU32, NonZeroUsize};
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use config::{Map, Value, ValueKind};
use secrecy::SecretString;

use super::problems::ConfigProblem;

/// Where the environment source says a value came from (`config::Environment` hard-codes it).
const ENV_ORIGIN: &str = "the environment";
/// Must match the prefix and separator given to `config::Environment` in `load.rs`.
pub(super) const ENV_PREFIX: &str = "B2BSYNC";
pub(super) const ENV_SEPARATOR: &str = "__";

/// Problems found so far, shared by every [`Table`] of one load.
#[derive(Debug, Default)]
pub(super) struct Problems(RefCell<Vec<ConfigProblem>>);

impl Problems {
    pub(super) fn push(&self, key: String, message: String) {
        self.0.borrow_mut().push(ConfigProblem { key, message });
    }

    pub(super) fn into_vec(self) -> Vec<ConfigProblem> {
        self.0.into_inner()
    }
}

/// The value was present but wrong; the problem has already been recorded.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reported;

/// Reads one table. Keys it was never asked about are reported as unknown when it is dropped:
/// doing it in `Drop` means no section can forget to, and a typo never silently takes a default.
pub(super) struct Table<'a> {
    path: String,
    value: Option<&'a Value>,
    entries: Option<&'a Map<String, Value>>,
    asked: Vec<String>,
    /// The section itself was reported (wrong type): don't pile "missing" problems on top.
    broken: bool,
    problems: &'a Problems,
}

impl<'a> Table<'a> {
    pub(super) fn root(value: &'a Value, problems: &'a Problems) -> Self {
        Self::new(String::new(), Some(value), problems)
    }

    fn new(path: String, value: Option<&'a Value>, problems: &'a Problems) -> Self {
        let mut table = Self {
            path,
            value,
            entries: None,
            asked: Vec::new(),
            broken: false,
            problems,
        };
        match value.map(|v| &v.kind) {
            None => {}
            Some(ValueKind::Table(entries)) => table.entries = Some(entries),
            Some(other) => {
                table.broken = true;
                table.problem_here(format!("expected a table, found {}", describe(other)));
            }
        }
        table
    }

    fn key_path(&self, key: &str) -> String {
        // A segment that is not a bare TOML key (empty, dotted, spaced) is quoted as TOML
        // would write it, so `"" = 1` reads `""`, not an empty key.
        let bare = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let segment = if bare {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        if self.path.is_empty() {
            segment
        } else {
            format!("{}.{segment}", self.path)
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.entries.is_some_and(|e| e.contains_key(key))
    }

    fn take(&mut self, key: &str) -> Option<&'a Value> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_owned());
        }
        self.entries?.get(key)
    }

    /// Records a problem about `key`, naming where its value came from if it has one.
    pub(super) fn problem(&self, key: &str, message: impl Display) {
        let path = self.key_path(key);
        let value = self.entries.and_then(|e| e.get(key));
        self.push(path, value, message);
    }

    pub(super) fn problem_here(&self, message: impl Display) {
        self.push(self.path.clone(), self.value, message);
    }

    fn push(&self, path: String, value: Option<&Value>, message: impl Display) {
        let message = match value.and_then(|v| source_note(&path, v)) {
            Some(note) => format!("{message} ({note})"),
            None => message.to_string(),
        };
        self.problems.push(path, message);
    }

    /// The one accessor every field goes through: `Ok(None)` when absent, `Err` once reported.
    pub(super) fn field<T>(
        &mut self,
        key: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Result<Option<T>, Reported> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        parse(value).map(Some).map_err(|message| {
            self.problem(key, message);
            Reported
        })
    }

    /// An optional field; `None` only when the value was reported. The default is written as
    /// in TOML and parsed like a configured value, so a default can't escape validation.
    pub(super) fn or<T>(
        &mut self,
        key: &str,
        default: impl Into<ValueKind>,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        if self.has(key) {
            return self.field(key, parse).ok().flatten();
        }
        self.take(key);
        parse(&Value::new(None, default))
            .map_err(|e| self.default_invalid(self.key_path(key), e))
            .ok()
    }

    fn default_invalid(&self, path: String, message: impl Display) {
        let message = format!("internal error: the built-in default is invalid: {message}");
        self.problems.push(path, message);
    }

    /// A list checked item by item: each bad item is reported on its own (`owned[2]`), so one
    /// typo doesn't hide the next. Absent, the default (written as in TOML) is read the same way.
    /// Environment values are always strings, so a comma-separated string is a list too.
    pub(super) fn list_or<T>(
        &mut self,
        key: &str,
        default: impl Into<ValueKind>,
        item: impl Fn(&Value) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let value = match self.take(key) {
            Some(value) => Cow::Borrowed(value),
            None => Cow::Owned(Value::new(None, default)),
        };
        let configured = matches!(value, Cow::Borrowed(_));
        let path = self.key_path(key);
        let reject = |path: String, value: &Value, message: String| {
            if configured {
                self.push(path, Some(value), message);
            } else {
                self.default_invalid(path, message);
            }
        };
        let items = match list_items(&value) {
            Ok(items) => items,
            Err(message) => {
                reject(path, &value, message);
                return None;
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        let mut complete = true;
        for (index, value) in items.iter().enumerate() {
            match item(value) {
                Ok(item) => parsed.push(item),
                Err(message) => {
                    complete = false;
                    reject(format!("{path}[{index}]"), value, message);
                }
            }
        }
        complete.then_some(parsed)
    }

    /// A table whose keys are the operator's data (B2B extra field names, ERP customer ids)
    /// rather than schema keys, so none of them is unknown. Each value goes through `parse`
    /// and a bad one is reported under its own key. `Ok(None)` when absent.
    pub(super) fn map_of<T>(
        &mut self,
        key: &str,
        parse: impl Fn(&Value) -> Result<T, String>,
    ) -> Result<Option<BTreeMap<String, T>>, Reported> {
        let Some(value) = self.take(key) else {
            return Ok(None);
        };
        let ValueKind::Table(entries) = &value.kind else {
            let found = describe(&value.kind);
            self.problem(key, format!("expected a table, found {found}"));
            return Err(Reported);
        };
        let path = self.key_path(key);
        let mut map = BTreeMap::new();
        let mut complete = true;
        for (name, value) in entries {
            let parsed = if name.trim().is_empty() {
                Err("the name must not be empty".to_owned())
            } else {
                parse(value)
            };
            match parsed {
                Ok(parsed) => {
                    map.insert(name.clone(), parsed);
                }
                Err(message) => {
                    complete = false;
                    self.push(format!("{path}.{}", quote_key(name)), Some(value), message);
                }
            }
        }
        if complete {
            Ok(Some(map))
        } else {
            Err(Reported)
        }
    }

    /// A field without a default; `hint` tells the operator how to supply it.
    pub(super) fn required<T>(
        &mut self,
        key: &str,
        hint: &str,
        parse: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let value = self.field(key, parse).ok()?;
        if value.is_none() {
            self.missing(key, hint);
        }
        value
    }

    /// Exactly one of two keys that give the same thing two ways (`token` or `token_file`).
    pub(super) fn exactly_one<T>(
        &mut self,
        (a, parse_a): (&str, impl FnOnce(&Value) -> Result<T, String>),
        (b, parse_b): (&str, impl FnOnce(&Value) -> Result<T, String>),
    ) -> Option<T> {
        match (self.has(a), self.has(b)) {
            (true, true) => {
                self.take(b);
                self.take(a);
                self.problem(a, format!("both {a} and {b} are set; keep only one"));
                None
            }
            (true, false) => self.field(a, parse_a).ok().flatten(),
            (false, true) => self.field(b, parse_b).ok().flatten(),
            (false, false) => {
                self.take(b);
                self.take(a);
                self.missing(a, &format!("set {a} or {b}"));
                None
            }
        }
    }

    /// Records that the table itself lacks something (`stores: no store is configured`).
    pub(super) fn missing_here(&self, message: &str) {
        if !self.broken {
            self.problems.push(self.path.clone(), message.to_owned());
        }
    }

    pub(super) fn missing(&self, key: &str, hint: &str) {
        if !self.broken {
            self.problems
                .push(self.key_path(key), format!("missing ({hint})"));
        }
    }

    /// A sub-table; an absent one reads as empty so that its fields take their defaults.
    pub(super) fn section(&mut self, key: &str) -> Table<'a> {
        let value = self.take(key);
        let mut table = Table::new(self.key_path(key), value, self.problems);
        table.broken |= self.broken;
        table
    }

    /// A sub-table that may be left out entirely.
    pub(super) fn optional_section(&mut self, key: &str) -> Option<Table<'a>> {
        self.has(key).then(|| self.section(key))
    }

    /// The names of the table's entries, sorted, without reading them (the configured stores,
    /// which sources refer to).
    pub(super) fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .entries
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Every entry of a table keyed by user-chosen names (`[stores.<name>]`).
    pub(super) fn named_sections(&mut self) -> Vec<(String, Table<'a>)> {
        let mut entries: Vec<_> = self.entries.into_iter().flatten().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        entries
            .into_iter()
            .map(|(name, _)| (name.clone(), self.section(name)))
            .collect()
    }
}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        let Some(entries) = self.entries else { return };
        let mut unknown: Vec<_> = entries.keys().filter(|k| !self.asked.contains(k)).collect();
        unknown.sort();
        for key in unknown {
            let message = match closest(key, &self.asked) {
                Some(known) => format!("unknown key (did you mean {known}?)"),
                None => "unknown key".to_owned(),
            };
            self.problem(key, message);
        }
    }
}

/// The known key a typo most likely meant, if any is close enough to be a useful hint.
fn closest<'k>(unknown: &str, known: &'k [String]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), k.as_str()))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `from environment variable B2BSYNC__X__Y` or `from <file>`, for the value at `path`.
///
/// The config crate keeps origins on leaves only (merged tables are rebuilt without one),
/// so a table is attributed to its first leaf.
fn source_note(path: &str, value: &Value) -> Option<String> {
    if let Some(origin) = value.origin() {
        return Some(if origin == ENV_ORIGIN {
            // A list item (`owned[2]`) came from the variable that set the whole list.
            let variable = path.split('[').next().unwrap_or(path);
            format!("from environment variable {}", env_var_name(variable))
        } else {
            format!("from {origin}")
        });
    }
    let ValueKind::Table(entries) = &value.kind else {
        return None;
    };
    let mut keys: Vec<_> = entries.keys().collect();
    keys.sort();
    keys.into_iter()
        .find_map(|k| source_note(&format!("{path}.{k}"), &entries[k]))
}

/// The conventional spelling of the variable that sets `path`; the environment source
/// lowercases names, so the operator may have written it in another case.
pub(super) fn env_var_name(path: &str) -> String {
    let mut name = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    name.push_str(&path.to_uppercase().replace('.', ENV_SEPARATOR));
    name
}

/// An entry name as TOML would need it written: bare when it can be, quoted otherwise
/// (`extra_fields."ERP Sync Source"`).
fn quote_key(name: &str) -> Cow<'_, str> {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(format!("{name:?}"))
    }
}

/// The items of a TOML array, or of a comma-separated string (blank: no items).
fn list_items(value: &Value) -> Result<Vec<Value>, String> {
    match &value.kind {
        ValueKind::Array(items) => Ok(items.clone()),
        ValueKind::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        ValueKind::String(s) => {
            let origin = value.origin().map(str::to_owned);
            Ok(s.split(',')
                .map(|item| Value::new(origin.as_ref(), item.trim()))
                .collect())
        }
        other => Err(format!("expected a list, found {}", describe(other))),
    }
}

fn describe(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Nil => "nothing",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => {
            "a number"
        }
        ValueKind::Float(_) => "a decimal number",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "a list",
    }
}

// Value parsers. None of them quotes a string value: it might be a secret in the wrong key.

pub(super) fn string(value: &Value) -> Result<String, String> {
    match &value.kind {
        ValueKind::String(s) => Ok(s.clone()),
        other => Err(format!("expected a string, found {}", describe(other))),
    }
}

/// `true`/`false`, also as text (environment values are strings).
pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match &value.kind {
        ValueKind::Boolean(b) => Ok(*b),
        ValueKind::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err("expected true or false".to_owned()),
        },
        other => Err(format!("expected true or false, found {}", describe(other))),
    }
}

/// Text that says something: not blank, no control characters (labels, names, paths).
pub(super) fn text(value: &Value) -> Result<String, String> {
    let s = string(value)?;
    if s.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else if s.chars().any(char::is_control) {
        Err("must not contain control characters".to_owned())
    } else {
        Ok(s)
    }
}

/// A non-empty string without whitespace or control characters (hashes, tokens, URLs).
pub(super) fn word(value: &Value) -> Result<String, String> {
    string(value).and_then(check_word)
}

fn check_word(s: String) -> Result<String, String> {
    if s.is_empty() {
        Err("must not be empty".to_owned())
    } else if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("must not contain whitespace or control characters".to_owned())
    } else {
        Ok(s)
    }
}

/// A secret given inline.
pub(super) fn secret(value: &Value) -> Result<SecretString, String> {
    word(value).map(SecretString::from)
}

/// A secret read from the file named by the value (a Kubernetes secret mount, for instance).
/// Surrounding whitespace is trimmed because such files usually end with a newline.
/// Messages leave the path out too: a token pasted into `token_file` would otherwise be shown.
pub(super) fn secret_file(value: &Value) -> Result<SecretString, String> {
    let path = string(value)?;
    let content = std::fs::read_to_string(Path::new(&path))
        .map_err(|e| format!("cannot read the file it names ({e})"))?;
    check_word(content.trim().to_owned())
        .map(SecretString::from)
        .map_err(|why| format!("the file's content {why} (after trimming)"))
}

/// Whole numbers, also written as strings because environment values always are.
fn integer(value: &Value) -> Result<i128, String> {
    match &value.kind {
        ValueKind::I64(n) => Ok((*n).into()),
        ValueKind::U64(n) => Ok((*n).into()),
        ValueKind::I128(n) => Ok(*n),
        ValueKind::U128(n) => Ok(i128::try_from(*n).unwrap_or(i128::MAX)),
        ValueKind::String(s) => s
            .trim()
            .parse()
            .map_err(|_| "expected a whole number".to_owned()),
        other => Err(format!(
            "expected a whole number, found {}",
            describe(other)
        )),
    }
}

/// An id given by another system (a B2B company, a BigCommerce channel): 1 or more, no upper
/// bound of our own.
pub(super) fn id(value: &Value) -> Result<u64, String> {
    let n = integer(value)?;
    u64::try_from(n)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| format!("must be a whole number of at least 1 (got {n})"))
}

pub(super) fn whole(range: RangeInclusive<u32>) -> impl Fn(&Value) -> Result<u32, String> {
    move |value| {
        let n = integer(value)?;
        u32::try_from(n)
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                format!(
                    "must be between {} and {} (got {n})",
                    range.start(),
                    range.end()
                )
            })
    }
}

/// Ranges passed here start at 1 or more, so the zero case only guards against a schema typo.
pub(super) fn positive(
    range: RangeInclusive<u32>,
) -> impl Fn(&Value) -> Result<NonZeroU32, String> {
    let whole = whole(range);
    move |value| NonZeroU32::new(whole(value)?).ok_or_else(|| "must be at least 1".to_owned())
}

pub(super) fn positive_usize(
    range: RangeInclusive<u32>,
) -> impl Fn(&Value) -> Result<NonZeroUsize, String> {
    let positive = positive(range);
    move |value| NonZeroUsize::try_from(positive(value)?).map_err(|e| e.to_string())
}

pub(super) fn secs(range: RangeInclusive<u32>) -> impl Fn(&Value) -> Result<Duration, String> {
    let whole = whole(range);
    move |value| whole(value).map(|n| Duration::from_secs(n.into()))
}

/// Seconds with a fraction (`2`, `0.5`), between `min` and `max` seconds.
pub(super) fn fractional_secs(min: f64, max: f64) -> impl Fn(&Value) -> Result<Duration, String> {
    move |value| {
        let n: f64 = match &value.kind {
            ValueKind::Float(f) => *f,
            ValueKind::String(s) => s
                .trim()
                .parse()
                .map_err(|_| "expected a number of seconds".to_owned())?,
            _ => integer(value).map_err(|_| {
                format!(
                    "expected a number of seconds, found {}",
                    describe(&value.kind)
                )
            })? as f64,
        };
        if !(min..=max).contains(&n) {
            return Err(format!("must be between {min} and {max} seconds (got {n})"));
        }
        Duration::try_from_secs_f64(n).map_err(|e| e.to_string())
    }
}

pub(super) fn millis(range: RangeInclusive<u32>) -> impl Fn(&Value) -> Result<Duration, String> {
    let whole = whole(range);
    move |value| whole(value).map(|n| Duration::from_millis(n.into()))
}

/// One of a fixed set of names (case-insensitive: environment values are often upper case).
pub(super) fn choice<T: Copy>(
    options: &'static [(&'static str, T)],
) -> impl Fn(&Value) -> Result<T, String> {
    move |value| {
        let s = string(value)?;
        options
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<_> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}
