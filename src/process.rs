//! This process's identity, as the database and the APIs see it.

/// This process's name on its database connections (`application_name`) and in its requests'
/// `User-Agent`: recovery asks PostgreSQL whether the process that sent a request is still alive
/// (see `store::runs::start`), and B2B's logs show which replica sent a request.
pub fn process_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("{PROCESS_PREFIX}{}", uuid::Uuid::new_v4().simple()))
}

/// What every daemon process's connection name starts with.
pub const PROCESS_PREFIX: &str = "b2b-invoice-sync/";
