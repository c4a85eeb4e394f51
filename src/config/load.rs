//! Reading the file, layering the environment over it, and handing the merged tree to the schema.

use std::fmt;
use std::io;
use std::path::Path;

use config::{Config, Environment, FileFormat, Format, Map, Source, Value};

use super::node::{env_var_name, Problems, Table, ENV_PREFIX, ENV_SEPARATOR};
use super::problems::{ConfigErrors, ConfigProblem};
use super::{schema, Settings};

/// Loads `path` (TOML, required), then overrides from the process environment
/// (`B2BSYNC__STORES__ACME__B2B__TOKEN` sets `stores.acme.b2b.token`).
pub fn load(path: &Path) -> Result<Settings, ConfigErrors> {
    let mut env = Map::new();
    let mut problems = Vec::new();
    for (name, value) in std::env::vars_os() {
        // A non-UTF-8 name cannot be an override; a non-UTF-8 override value is reported
        // here because the config crate's own message would quote the (possibly secret) value.
        let Ok(name) = name.into_string() else {
            continue;
        };
        match value.into_string() {
            Ok(value) => {
                env.insert(name, value);
            }
            Err(_) if is_override(&name) => problems.push(ConfigProblem {
                key: name,
                message: "not valid UTF-8; environment overrides must be text".to_owned(),
            }),
            Err(_) => {}
        }
    }
    load_from(path, env, problems)
}

/// [`load`] with an explicit environment instead of the process's (for tests and tools).
pub fn load_with_env(
    path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigErrors> {
    load_from(path, env.into_iter().collect(), Vec::new())
}

/// Variables of this program that are not overrides (`B2BSYNC_CONFIG`; the test harness's).
const OTHER_VARIABLES: &[&str] = &[
    "B2BSYNC_CONFIG",
    "B2BSYNC_TEST_POSTGRES",
    "B2BSYNC_PROPTEST_CASES",
    "B2BSYNC_REPLICAS_FULL",
    "B2BSYNC_FAULTS_N",
    "B2BSYNC_FAULTS_SEED",
    "B2BSYNC_FAULTS_KILLS",
];

/// Variables that look meant as overrides but are not read: `B2BSYNC_` with one underscore
/// (`B2BSYNC_STORES__ACME__B2B__TOKEN`). Each warning names the variable and the form that
/// would be read; the program's other `B2BSYNC_*` variables are left alone.
pub fn env_warnings(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let single = format!("{ENV_PREFIX}_");
    let mut warnings: Vec<String> = names
        .into_iter()
        .filter(|name| {
            name.get(..single.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(&single))
                && !is_override(name)
                && !OTHER_VARIABLES
                    .iter()
                    .any(|known| known.eq_ignore_ascii_case(name))
        })
        .map(|name| {
            let rest = name.get(single.len()..).unwrap_or_default();
            format!(
                "environment variable {name} is ignored: overrides start with \
                 {ENV_PREFIX}{ENV_SEPARATOR} (two underscores), like {ENV_PREFIX}{ENV_SEPARATOR}{}",
                rest.trim_start_matches('_').to_ascii_uppercase()
            )
        })
        .collect();
    warnings.sort();
    warnings
}

fn is_override(name: &str) -> bool {
    let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}");
    name.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(&prefix))
}

fn load_from(
    path: &Path,
    mut env: Map<String, String>,
    mut problems: Vec<ConfigProblem>,
) -> Result<Settings, ConfigErrors> {
    // `B2BSYNC__` alone or `B2BSYNC__STORES____TOKEN` addresses an empty key, which the
    // config crate would file under "" where no message could name it; name the variable.
    env.retain(|name, _| {
        let malformed = is_override(name) && name.split(ENV_SEPARATOR).skip(1).any(str::is_empty);
        if malformed {
            problems.push(ConfigProblem {
                key: name.clone(),
                message: format!(
                    "not a key path; overrides are {ENV_PREFIX} followed by each key name \
                     after {ENV_SEPARATOR}, like {}",
                    env_var_name("stores.acme.b2b.token")
                ),
            });
        }
        !malformed
    });
    let settings = match merge(path, env) {
        Ok(root) => {
            let found = Problems::default();
            let settings = schema::settings(Table::root(&root, &found));
            problems.extend(found.into_vec());
            settings
        }
        Err(problem) => {
            problems.push(problem);
            None
        }
    };
    // Sorted so that a store's problems sit together whatever order the maps iterate in.
    problems.sort_by(|a, b| a.key.cmp(&b.key));
    match settings {
        Some(settings) if problems.is_empty() => Ok(settings),
        None if problems.is_empty() => Err(ConfigErrors::single(
            path.display().to_string(),
            "internal error: the settings are incomplete but no problem was recorded",
        )),
        _ => Err(ConfigErrors { problems }),
    }
}

fn merge(path: &Path, env: Map<String, String>) -> Result<Value, ConfigProblem> {
    let file = TomlFile::read(path)?;
    let env = Environment::with_prefix(ENV_PREFIX)
        .separator(ENV_SEPARATOR)
        .source(Some(env));
    let config = Config::builder()
        .add_source(file)
        .add_source(env)
        .build()
        .map_err(|e| ConfigProblem {
            key: path.display().to_string(),
            message: format!("cannot layer the environment overrides over this file: {e}"),
        })?;
    Ok(config.cache)
}

/// The parsed file as a `config` source.
///
/// `config::File` would also try other extensions when the path is missing and words its
/// errors for developers; reading the file here gives the operator a precise message, and
/// every value carries the path as the operator gave it as its origin.
#[derive(Clone)]
struct TomlFile {
    path: String,
    table: Map<String, Value>,
}

impl TomlFile {
    fn read(path: &Path) -> Result<Self, ConfigProblem> {
        let name = path.display().to_string();
        let problem = |message| ConfigProblem {
            key: name.clone(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| problem(read_error(&e)))?;
        let table = FileFormat::Toml
            .parse(Some(&name), &text)
            .map_err(|e| problem(syntax_error(&e.to_string())))?;
        Ok(Self { path: name, table })
    }
}

/// Only the path: the table holds secrets.
impl fmt::Debug for TomlFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TomlFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Source for TomlFile {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.table.clone())
    }
}

fn read_error(error: &io::Error) -> String {
    let what_to_do = match error.kind() {
        io::ErrorKind::NotFound => {
            "; pass the right path with --config, or start a new file from config/example.toml"
        }
        io::ErrorKind::PermissionDenied => "; make it readable by the user the daemon runs as",
        _ => "",
    };
    format!("cannot read the configuration file: {error}{what_to_do}")
}

/// The parser's message and position without its excerpt of the offending line, which may
/// hold a secret (an unterminated `token = "...` string, for instance).
fn syntax_error(error: &str) -> String {
    let summary: Vec<&str> = error
        .lines()
        .filter(|line| !is_excerpt(line))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    format!(
        "not valid TOML: {}; fix the syntax there",
        summary.join(": ")
    )
}

/// The excerpt lines look like `  |`, `3 | token = "abc` and `  |   ^`.
fn is_excerpt(line: &str) -> bool {
    line.trim_start()
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start()
        .starts_with('|')
}
