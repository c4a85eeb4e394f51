//! `b2b-invoice-sync customers import FILE.csv --source NAME`: a CSV with the header
//! `external_customer_id,company_id` into `customer_map`. The whole file is checked first and
//! nothing is written if any row is bad, so a half-imported mapping never exists.

use std::collections::BTreeMap;
use std::path::Path;

use sqlx::PgPool;

use super::table;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {message}")]
    Read { path: String, message: String },
    #[error("{path}: the header must be `external_customer_id,company_id` (found `{found}`)")]
    Header { path: String, found: String },
    #[error("{path}: {} bad row(s), nothing imported:\n{}", problems.len(), problems.join("\n"))]
    Rows { path: String, problems: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Reads and checks the file: every row's problem is reported, with its line number.
pub fn read_mappings(path: &Path) -> Result<Vec<(String, String)>, ImportError> {
    let shown = path.display().to_string();
    let read_error = |e: csv::Error| ImportError::Read {
        path: shown.clone(),
        message: e.to_string(),
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(read_error)?;
    let header: Vec<String> = reader
        .headers()
        .map_err(read_error)?
        .iter()
        .map(str::to_owned)
        .collect();
    if header != ["external_customer_id", "company_id"] {
        return Err(ImportError::Header {
            path: shown,
            found: header.join(","),
        });
    }
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index as u64 + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("line {line}: {e}"));
                continue;
            }
        };
        let customer = record.get(0).unwrap_or_default().to_owned();
        let company = record.get(1).unwrap_or_default().to_owned();
        if customer.is_empty() {
            problems.push(format!("line {line}: external_customer_id is empty"));
        } else if !company.parse::<u64>().is_ok_and(|n| n > 0) {
            problems.push(format!(
                "line {line}: company_id `{company}` is not a B2B company id (a positive whole number)"
            ));
        } else if let Some(first) = seen.insert(customer.clone(), line) {
            problems.push(format!(
                "line {line}: {customer} was already mapped on line {first}"
            ));
        } else {
            rows.push((customer, company));
        }
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(ImportError::Rows {
            path: shown,
            problems,
        })
    }
}

/// Imports the file for `source`; returns how many mappings were written.
pub async fn import_file(pool: &PgPool, source: &str, path: &Path) -> Result<u64, ImportError> {
    let rows = read_mappings(path)?;
    Ok(table::store_imports(pool, source, &rows).await?)
}
