//! `demo`, the README's first command: from a database that does not exist yet to its summary,
//! twice (it must be repeatable), and the message when PostgreSQL is not there.

use std::process::Output;

use sqlx::{Connection, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_b2b-invoice-sync");

/// The server tests use, as in `db.rs`: `B2BSYNC_TEST_POSTGRES` overrides.
fn admin_url() -> String {
    std::env::var("B2BSYNC_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database name nobody has created; dropped when the guard goes.
struct FreshDatabase {
    name: String,
    url: String,
}

impl FreshDatabase {
    fn new() -> Self {
        let name = format!("b2bsync_test_demo_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_url();
        let (server, _) = admin
            .rsplit_once('/')
            .expect("B2BSYNC_TEST_POSTGRES ends with /<database>");
        Self {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url()).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

async fn demo(database_url: &str) -> Output {
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("demo")
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG");
    for (k, _) in std::env::vars() {
        if k.starts_with("B2BSYNC") {
            cmd.env_remove(k);
        }
    }
    cmd.output().await.expect("the binary runs")
}

#[tokio::test]
async fn the_demo_runs_from_a_missing_database_to_its_summary_and_again() {
    let db = FreshDatabase::new();
    for round in 1..=2 {
        let out = demo(&db.url).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "round {round}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        );
        if round == 1 {
            assert!(stdout.contains("(created, migrated)"), "{stdout}");
        } else {
            assert!(stdout.contains("earlier rows cleared"), "{stdout}");
        }
        for text in [
            "Cycle 1",
            "20 created, 0 updated, 0 unchanged, 2 deleted, 1 failed",
            "(counted as deleted)",
            "[ ok ] cycle 1 counted the 2 voided and deleted invoices as deleted",
            "  B2B calls  ",
            "  ERP calls  0 ",
            "bad row    invoices-2026-11-02.csv line 11 (ERP-INV-20023): currency",
            "voided     invoice 20008",
            "deleted    invoice 20014",
            "Cycle 2",
            "0 created, 3 updated, 1 unchanged",
            "GET /companies             customer lookups: all from the cache",
            "a buyer paid ",
            "payments   1 new in B2B, 1 written back to the ERP, 0 failed",
            "[ ok ] the buyer's payment of ",
            "[ ok ] the person's edit survived the update: details.personNote = \"call before shipping\"",
            "Demo complete.",
        ] {
            assert!(stdout.contains(text), "round {round}: {text:?} missing:\n{stdout}");
        }
        assert!(!stdout.contains("FAIL"), "{stdout}");
        // Amounts at the currency's minor unit: `a buyer paid USD 104.80`, never `104.8`.
        let paid = stdout
            .lines()
            .find(|l| l.contains("a buyer paid "))
            .unwrap_or_default();
        let amount = paid
            .split("a buyer paid USD ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        assert!(
            amount
                .split_once('.')
                .is_some_and(|(_, cents)| cents.len() == 2),
            "{paid}"
        );
        // Logs stay on stderr, as JSON lines when it is not a terminal.
        for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "not a JSON log line: {line}"
            );
        }
    }
}

#[tokio::test]
async fn without_postgresql_the_demo_says_so_and_exits_1() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = demo(&format!(
        "postgres://demo:hunter2@127.0.0.1:{port}/b2b_invoice_sync"
    ))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "PostgreSQL is unreachable at postgres://demo@127.0.0.1:{port}/b2b_invoice_sync"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("DATABASE_URL="), "{stderr}");
    assert!(
        !stderr.contains("hunter2") && !stdout.contains("hunter2"),
        "password leaked"
    );
}
