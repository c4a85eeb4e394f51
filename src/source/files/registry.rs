//! Export files already imported, by content (`export_files`): the same export dropped into the
//! folder again, under any name and with any modification time, is recognised and set aside
//! unread, so an old export can never take B2B back to an older version of its invoices.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// A file's identity by content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Content {
    pub sha256: String,
    pub bytes: i64,
}

impl Content {
    /// Reads the whole file once (blocking: call on the blocking pool).
    pub(super) fn of(path: &Path) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes: i64 = 0;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hash.update(&buf[..n]);
            bytes = bytes.saturating_add(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(Self {
            sha256: hex::encode(hash.finalize()),
            bytes,
        })
    }
}

/// An earlier import of the same content.
#[derive(Debug, Clone)]
pub(super) struct Imported {
    pub file_name: String,
    pub settled_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(super) struct Registry {
    pool: PgPool,
}

impl Registry {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub(super) async fn find(
        &self,
        source: &str,
        content: &Content,
    ) -> Result<Option<Imported>, sqlx::Error> {
        let row: Option<(String, DateTime<Utc>)> = sqlx::query_as(
            "SELECT file_name, settled_at FROM export_files WHERE source = $1 AND sha256 = $2",
        )
        .bind(source)
        .bind(&content.sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(file_name, settled_at)| Imported {
            file_name,
            settled_at,
        }))
    }

    /// Records a file whose every record is settled (before it moves to `processed/`, so a
    /// crash in between leaves a file that the next cycle recognises and sets aside).
    pub(super) async fn record(
        &self,
        source: &str,
        file_name: &str,
        content: &Content,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO export_files (source, sha256, file_name, bytes) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source, sha256) DO NOTHING",
        )
        .bind(source)
        .bind(&content.sha256)
        .bind(file_name)
        .bind(content.bytes)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
