//! The throwaway PostgreSQL that `demo` and `./scripts/test` start when none is running: it
//! serves, it goes away with its directory, and one left by a killed process is cleaned up by
//! the next start. (`.ci/run` runs the demo and these tests with the machine's server stopped.)

use std::process::Command;

use b2b_invoice_sync::demo::postgres::{answers, ThrowawayPostgres};
use sqlx::{Connection, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

fn start() -> ThrowawayPostgres {
    ThrowawayPostgres::start().unwrap_or_else(|e| panic!("start a throwaway PostgreSQL: {e}"))
}

#[tokio::test]
async fn a_throwaway_postgres_serves_and_leaves_nothing_behind() {
    let postgres = tokio::task::spawn_blocking(start).await.expect("join");
    let (dir, port) = (postgres.dir().to_owned(), postgres.port());
    assert!(dir.join("data").is_dir(), "{}", dir.display());
    assert!(postgres.describe().contains(&format!("127.0.0.1:{port}")));
    assert!(
        postgres.version().starts_with("PostgreSQL "),
        "{postgres:?}"
    );

    // The tests' way in: its maintenance database, then a database of their own.
    let mut admin = PgConnection::connect(&postgres.url("postgres"))
        .await
        .expect("connect to the throwaway server");
    sqlx::query("CREATE DATABASE b2bsync_throwaway_check")
        .execute(&mut admin)
        .await
        .expect("create a database");
    admin.close().await.expect("close");
    let mut conn = PgConnection::connect(&postgres.url("b2bsync_throwaway_check"))
        .await
        .expect("connect to the new database");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(one, 1);
    conn.close().await.expect("close");

    tokio::task::spawn_blocking(move || postgres.stop())
        .await
        .expect("join")
        .expect("stop the throwaway server");
    assert!(!dir.exists(), "{} is left behind", dir.display());
    assert!(!answers("127.0.0.1", port), "the server still answers");
}

#[test]
fn a_throwaway_postgres_left_by_a_killed_process_is_removed_by_the_next_start() {
    let left = start();
    let (dir, port) = (left.dir().to_owned(), left.port());
    assert!(answers("127.0.0.1", port));
    // Make it look like the leftover of a process that is gone: a pid that just exited.
    let mut child = Command::new("true").spawn().expect("run true");
    let dead = child.id();
    child.wait().expect("wait for true");
    std::fs::write(dir.join("owner.pid"), dead.to_string()).expect("write owner.pid");
    std::mem::forget(left);

    let next = start();
    assert!(
        !dir.exists(),
        "the leftover {} is still there",
        dir.display()
    );
    assert!(
        !answers("127.0.0.1", port),
        "the leftover server still answers"
    );
    next.stop().expect("stop");
}

#[test]
fn with_postgres_runs_the_command_and_passes_its_exit_code_on() {
    // A server is configured here (or answers at 127.0.0.1:5432), so the command runs as it is;
    // `.ci/run` covers the throwaway path with the machine's server stopped.
    let out = Command::new(BIN)
        .args([
            "with-postgres",
            "--",
            "sh",
            "-c",
            "echo \"$B2BSYNC_TEST_POSTGRES\"; exit 3",
        ])
        .env(
            "B2BSYNC_TEST_POSTGRES",
            "postgres://postgres@127.0.0.1:1/postgres",
        )
        .output()
        .expect("run with-postgres");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "postgres://postgres@127.0.0.1:1/postgres"
    );
}
