//! A private, throwaway PostgreSQL for a machine where none is running: the demo (when
//! `DATABASE_URL` is not set and nothing answers at the default address) and the test script
//! (`b2b-invoice-sync with-postgres -- ...`) start one from the machine's installed server
//! binaries instead of failing.
//!
//! `initdb` makes a cluster in a new directory under the system's temp dir (trust auth for the
//! user `postgres`, no fsync: nothing in it is worth keeping); `pg_ctl` starts it on a free port
//! of 127.0.0.1, with its socket in that directory, and stops it when [`ThrowawayPostgres`] is
//! stopped or dropped; then the directory is removed. A cluster left behind by a process that
//! was killed is stopped and removed by the next start.
//!
//! initdb and the server refuse to run as root: as root, both run as the `postgres` user (the
//! one the distributions' packages create), or `nobody` where there is none, and the directory
//! is given to that user.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The superuser of the throwaway cluster; trust auth, so no password.
pub const SUPERUSER: &str = "postgres";
/// What the throwaway directories are called under the temp dir: `<prefix><pid>-<random>`.
const DIR_PREFIX: &str = "b2bsync-postgres-";
/// How long `pg_ctl` may take to start or stop the server.
const PG_CTL_WAIT_SECS: u32 = 60;

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error(
        "no PostgreSQL server binaries (initdb and pg_ctl) on this machine: looked on PATH and in {searched}.\n\
         Install them with:\n    {install}"
    )]
    NotInstalled { searched: String, install: String },
    #[error(
        "running as root, and this machine has neither a `postgres` nor a `nobody` user to run \
         PostgreSQL as (initdb and the server refuse to run as root): run this as a normal user, \
         or create one with `useradd --system postgres`"
    )]
    NoUserForRoot,
    #[error("the throwaway PostgreSQL's directory {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error(
        "{step} failed for the throwaway PostgreSQL in {}: {detail}",
        dir.display()
    )]
    Step {
        step: String,
        dir: PathBuf,
        detail: String,
    },
}

fn io_error(path: &Path, e: std::io::Error) -> PostgresError {
    PostgresError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The server binaries found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    pub dir: PathBuf,
}

impl Binaries {
    fn initdb(&self) -> PathBuf {
        self.dir.join("initdb")
    }

    fn pg_ctl(&self) -> PathBuf {
        self.dir.join("pg_ctl")
    }
}

/// Where distributions install the server binaries when they are not on PATH; `*` is a
/// version, and the highest version wins.
const VERSIONED_DIRS: &[&str] = &[
    // Debian, Ubuntu (the postgresql package).
    "/usr/lib/postgresql/*/bin",
    // The PostgreSQL project's RPMs.
    "/usr/pgsql-*/bin",
    // Homebrew, Apple silicon and Intel.
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
];
/// Unversioned places: a build from source, Homebrew's unversioned formula.
const FIXED_DIRS: &[&str] = &[
    "/usr/local/pgsql/bin",
    "/opt/homebrew/opt/postgresql/bin",
    "/usr/local/opt/postgresql/bin",
];

/// The server binaries: on `PATH` first, then where the distributions put them.
pub fn find_binaries() -> Result<Binaries, PostgresError> {
    find_binaries_in(std::env::var_os("PATH"), VERSIONED_DIRS, FIXED_DIRS)
}

fn find_binaries_in(
    path: Option<OsString>,
    versioned: &[&str],
    fixed: &[&str],
) -> Result<Binaries, PostgresError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(path) = path {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
            return Ok(Binaries { dir });
        }
    }
    let mut best: Option<(Vec<u32>, PathBuf)> = None;
    for pattern in versioned {
        let Some((head, tail)) = pattern.split_once('*') else {
            continue;
        };
        let (parent, prefix) = match head.rsplit_once('/') {
            Some((parent, prefix)) => (PathBuf::from(parent), prefix),
            None => continue,
        };
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(version) = name.strip_prefix(prefix) else {
                continue;
            };
            let dir = PathBuf::from(format!("{}/{name}{tail}", parent.display()));
            let key: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
            if key.is_empty() || !has_both(&dir) {
                continue;
            }
            if best.as_ref().is_none_or(|(k, _)| key > *k) {
                best = Some((key, dir));
            }
        }
    }
    if let Some((_, dir)) = best {
        return Ok(Binaries { dir });
    }
    if let Some(dir) = fixed.iter().map(PathBuf::from).find(|d| has_both(d)) {
        return Ok(Binaries { dir });
    }
    let mut searched: Vec<&str> = versioned.to_vec();
    searched.extend_from_slice(fixed);
    Err(PostgresError::NotInstalled {
        searched: searched.join(", "),
        install: install_command(),
    })
}

/// The one command that installs PostgreSQL's server binaries on this kind of machine.
pub fn install_command() -> String {
    if cfg!(target_os = "macos") {
        return "brew install postgresql@17".to_owned();
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    install_command_for(&os_release, is_root())
}

fn install_command_for(os_release: &str, root: bool) -> String {
    let field = |key: &str| -> String {
        os_release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(|v| v.trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default()
    };
    let ids = format!("{} {}", field("ID"), field("ID_LIKE"));
    let has = |id: &str| ids.split_whitespace().any(|i| i == id);
    let sudo = if root { "" } else { "sudo " };
    let command = if has("debian") || has("ubuntu") {
        "apt-get install -y postgresql"
    } else if has("fedora") || has("rhel") || has("centos") {
        "dnf install -y postgresql-server"
    } else if has("suse") || has("opensuse") {
        "zypper install -y postgresql-server"
    } else if has("arch") {
        "pacman -S --noconfirm postgresql"
    } else if has("alpine") {
        "apk add postgresql"
    } else {
        return "your distribution's PostgreSQL server package (the one with initdb and pg_ctl)"
            .to_owned();
    };
    format!("{sudo}{command}")
}

/// This process's effective uid, where /proc tells it.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let ids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    ids.split_whitespace().nth(1)?.parse().ok()
}

/// Whether this process runs as root.
fn is_root() -> bool {
    match effective_uid() {
        Some(uid) => uid == 0,
        None => std::env::var("USER").is_ok_and(|u| u == "root"),
    }
}

/// The uid and gid of a user in /etc/passwd.
fn passwd_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// A running throwaway cluster; stopped and removed by [`Self::stop`] or when dropped.
#[derive(Debug)]
pub struct ThrowawayPostgres {
    binaries: Binaries,
    dir: PathBuf,
    port: u16,
    version: String,
    /// The user it runs as when this process is root.
    run_as: Option<(u32, u32)>,
    stopped: bool,
}

impl ThrowawayPostgres {
    /// Finds the binaries, makes a cluster in a new temp directory and starts it on a free port.
    /// Blocks for a second or two (initdb); call it from `spawn_blocking` in async code.
    pub fn start() -> Result<Self, PostgresError> {
        let binaries = find_binaries()?;
        let run_as = if is_root() {
            Some(
                passwd_user("postgres")
                    .or_else(|| passwd_user("nobody"))
                    .ok_or(PostgresError::NoUserForRoot)?,
            )
        } else {
            None
        };
        sweep_leftovers(&binaries, run_as);

        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).map_err(|e| io_error(&dir, e))?;
        let mut postgres = Self {
            binaries,
            dir,
            port: 0,
            version: String::new(),
            run_as,
            stopped: false,
        };
        // From here on, dropping `postgres` removes the directory (and stops a started server).
        postgres.prepare_dir()?;
        postgres.version = postgres.server_version();
        postgres.initdb()?;
        // A free port can be taken between the probe and the server's bind: try a few.
        let mut last = None;
        for _ in 0..3 {
            match postgres.start_server() {
                Ok(()) => return Ok(postgres),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| postgres.step_error("pg_ctl start", "no attempt".to_owned())))
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn bin_dir(&self) -> &Path {
        &self.binaries.dir
    }

    /// `PostgreSQL 15.19`, as `initdb --version` says it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// One line for a person: what was started, where, and that it goes away.
    pub fn describe(&self) -> String {
        format!(
            "started a throwaway {} from {} in {} on 127.0.0.1:{} (user {SUPERUSER}, trust auth); \
             it is stopped and removed at exit",
            if self.version.is_empty() {
                "PostgreSQL"
            } else {
                &self.version
            },
            self.binaries.dir.display(),
            self.dir.display(),
            self.port
        )
    }

    /// Stops the server and removes its directory. Blocks for up to a few seconds.
    pub fn stop(mut self) -> Result<(), PostgresError> {
        self.stop_and_remove()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn prepare_dir(&self) -> Result<(), PostgresError> {
        let perms = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(&self.dir, perms).map_err(|e| io_error(&self.dir, e))?;
        // The owner file tells a later start whether the process that made it is still alive.
        let owner = self.dir.join("owner.pid");
        std::fs::write(&owner, std::process::id().to_string()).map_err(|e| io_error(&owner, e))?;
        if let Some((uid, gid)) = self.run_as {
            for path in [&self.dir, &owner] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| io_error(path, e))?;
            }
        }
        Ok(())
    }

    fn command(&self, program: PathBuf) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .env_remove("PGDATA")
            .env("LC_ALL", "C");
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        command
    }

    fn run(&self, step: &str, command: &mut Command) -> Result<Output, PostgresError> {
        let out = command
            .output()
            .map_err(|e| self.step_error(step, format!("cannot run it: {e}")))?;
        if out.status.success() {
            return Ok(out);
        }
        let mut detail = format!(
            "{}: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        )
        .trim_end()
        .to_owned();
        let log = self.dir.join("server.log");
        if let Ok(text) = std::fs::read_to_string(&log) {
            let tail: Vec<&str> = text.lines().rev().take(10).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            detail.push_str(&format!("\nserver log:\n{}", tail.join("\n")));
        }
        Err(self.step_error(step, detail))
    }

    fn step_error(&self, step: &str, detail: String) -> PostgresError {
        PostgresError::Step {
            step: step.to_owned(),
            dir: self.dir.clone(),
            detail,
        }
    }

    fn server_version(&self) -> String {
        Command::new(self.binaries.initdb())
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .and_then(|text| {
                text.split_once("(PostgreSQL)")
                    .map(|(_, v)| format!("PostgreSQL {}", v.trim()))
            })
            .unwrap_or_default()
    }

    fn initdb(&self) -> Result<(), PostgresError> {
        let mut command = self.command(self.binaries.initdb());
        command.arg("--pgdata").arg(self.data_dir()).args([
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]);
        self.run("initdb", &mut command)?;
        Ok(())
    }

    fn start_server(&mut self) -> Result<(), PostgresError> {
        self.port = free_port().map_err(|e| io_error(&self.dir, e))?;
        // Settings for a cluster nobody keeps: loopback only, its socket in its own directory,
        // and no waiting for the disk.
        let settings = format!(
            "\n# b2b-invoice-sync throwaway cluster\nlisten_addresses = '127.0.0.1'\nport = {}\n\
             unix_socket_directories = '{}'\nfsync = off\nsynchronous_commit = off\n\
             full_page_writes = off\n",
            self.port,
            self.dir.display().to_string().replace('\'', "''"),
        );
        let conf = self.data_dir().join("postgresql.auto.conf");
        std::fs::write(&conf, settings).map_err(|e| io_error(&conf, e))?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&conf, Some(uid), Some(gid))
                .map_err(|e| io_error(&conf, e))?;
        }
        let mut command = self.command(self.binaries.pg_ctl());
        command
            .arg("start")
            .arg("--pgdata")
            .arg(self.data_dir())
            .arg("--log")
            .arg(self.dir.join("server.log"))
            .args([
                "--wait",
                "--timeout",
                &PG_CTL_WAIT_SECS.to_string(),
                "--silent",
            ]);
        self.run("pg_ctl start", &mut command)?;
        Ok(())
    }

    fn stop_and_remove(&mut self) -> Result<(), PostgresError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        let mut result = Ok(());
        if self.data_dir().join("postmaster.pid").exists() {
            let stop = |mode: &str| {
                let mut command = self.command(self.binaries.pg_ctl());
                command
                    .arg("stop")
                    .arg("--pgdata")
                    .arg(self.data_dir())
                    .args(["--mode", mode, "--wait", "--timeout", "30", "--silent"]);
                self.run("pg_ctl stop", &mut command)
            };
            if let Err(e) = stop("fast") {
                if stop("immediate").is_err() {
                    result = Err(e);
                }
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound && result.is_ok() {
                result = Err(io_error(&self.dir, e));
            }
        }
        result
    }
}

impl Drop for ThrowawayPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_remove() {
            tracing::warn!(error = %e, "could not stop and remove the throwaway PostgreSQL");
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on right now.
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

/// Stops and removes the clusters of throwaway directories whose process is gone (killed
/// before it could clean up). Best effort, and only where /proc tells which processes live.
fn sweep_leftovers(binaries: &Binaries, run_as: Option<(u32, u32)>) {
    // As root the clusters belong to the server user, otherwise to this process's user.
    let Some(owner_uid) = run_as.map(|(uid, _)| uid).or_else(effective_uid) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(DIR_PREFIX) {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(dir.join("owner.pid")) else {
            continue;
        };
        let alive = Path::new("/proc").join(owner.trim()).exists();
        if alive || owner.trim().parse::<u32>().is_err() {
            continue;
        }
        if std::fs::metadata(&dir).ok().map(|m| m.uid()) != Some(owner_uid) {
            continue;
        }
        let leftover = ThrowawayPostgres {
            binaries: binaries.clone(),
            dir: dir.clone(),
            port: 0,
            version: String::new(),
            run_as,
            stopped: false,
        };
        // Dropping it stops the server (if one runs) and removes the directory.
        drop(leftover);
        tracing::info!(dir = %dir.display(), "removed a throwaway PostgreSQL left by a killed process");
    }
}

/// Whether something accepts TCP connections at `host:port` within a second.
pub fn answers(host: &str, port: u16) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bin(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for name in ["initdb", "pg_ctl"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
    }

    #[test]
    fn binaries_are_found_on_path_first_then_at_the_highest_version() {
        let root = tempfile::tempdir().unwrap();
        let lib = root.path().join("lib/postgresql");
        for version in ["9.6", "15", "13"] {
            fake_bin(&lib.join(version).join("bin"));
        }
        std::fs::create_dir_all(lib.join("16/bin")).unwrap(); // no binaries: skipped
        let pattern = format!("{}/*/bin", lib.display());
        let found = find_binaries_in(None, &[&pattern], &[]).unwrap();
        assert_eq!(found.dir, lib.join("15/bin"));

        let on_path = root.path().join("path-bin");
        fake_bin(&on_path);
        let path = std::env::join_paths([root.path().join("empty"), on_path.clone()]).unwrap();
        let found = find_binaries_in(Some(path), &[&pattern], &[]).unwrap();
        assert_eq!(found.dir, on_path);
    }

    #[test]
    fn without_binaries_the_error_gives_the_install_command() {
        let root = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*/bin", root.path().display());
        let fixed = root.path().join("pgsql/bin");
        let err = find_binaries_in(
            Some(OsString::from(root.path())),
            &[&pattern],
            &[&fixed.display().to_string()],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("no PostgreSQL server binaries"), "{text}");
        assert!(text.contains(&pattern), "{text}");
        assert!(text.contains("Install them with:"), "{text}");
    }

    #[test]
    fn the_install_command_fits_the_distribution() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(
            install_command_for(debian, true),
            "apt-get install -y postgresql"
        );
        assert_eq!(
            install_command_for("ID=ubuntu\nID_LIKE=debian\n", false),
            "sudo apt-get install -y postgresql"
        );
        assert_eq!(
            install_command_for("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n", false),
            "sudo dnf install -y postgresql-server"
        );
        assert!(install_command_for("ID=plan9\n", false).contains("initdb and pg_ctl"));
    }

    #[test]
    fn passwd_lookup_reads_uid_and_gid() {
        // Every Unix has root in /etc/passwd.
        assert_eq!(passwd_user("root"), Some((0, 0)));
        assert_eq!(passwd_user("no-such-user-b2bsync"), None);
    }
}
