//! Output helpers shared by the commands: aligned tables, JSON, times.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A plain-text table: columns padded to their widest cell, two spaces apart.
#[derive(Debug)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                if i + 1 == columns {
                    // No padding after the last column: long texts (errors) end the line.
                    out.push_str(cell);
                } else {
                    out.push_str(cell);
                    out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
                }
            }
            out.trim_end().to_owned()
        };
        let mut out = line(&self.header);
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row));
        }
        out
    }
}

/// Pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// `2026-11-21 10:04:05Z`: UTC, to the second.
pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// `1.24 s`
pub fn seconds(ms: u64) -> String {
    format!("{:.2} s", ms as f64 / 1000.0)
}

/// `s` for a count other than one.
pub fn plural(n: impl Into<i64>) -> &'static str {
    if n.into() == 1 {
        ""
    } else {
        "s"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_leave_the_last_unpadded() {
        let mut t = Table::new(&["ID", "SOURCE", "ERROR"]);
        t.row(vec!["1".into(), "erp".into(), "boom".into()]);
        t.row(vec!["12".into(), "billing".into(), "".into()]);
        assert_eq!(
            t.render(),
            "ID  SOURCE   ERROR\n1   erp      boom\n12  billing"
        );
    }
}
