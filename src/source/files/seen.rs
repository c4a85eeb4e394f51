//! The one rule for an id that comes again in the same export file, CSV or NDJSON: the first
//! record stands and every later one is refused, naming the line where the id first appeared.
//!
//! Ids are trimmed (an ERP that pads its ids to a fixed width still names the same invoices), so
//! two spellings that differ only by surrounding blanks are the same id: the later one is refused
//! like any repeat, and the message shows both spellings, since the ERP may hold two invoices
//! there that only a person can tell apart.

use std::collections::HashMap;

/// Ids seen in one file: trimmed id -> (first line, spelling there).
#[derive(Debug, Default)]
pub(super) struct SeenIds(HashMap<Box<str>, (u64, Box<str>)>);

impl SeenIds {
    /// Records `id` (trimmed), written as `spelt` at `line`; the reason it is refused when it
    /// appeared before.
    pub(super) fn first(&mut self, id: &str, spelt: &str, line: u64) -> Result<(), String> {
        match self.0.get(id) {
            None => {
                self.0.insert(id.into(), (line, spelt.into()));
                Ok(())
            }
            Some((earlier, earlier_spelt)) if **earlier_spelt == *spelt => Err(format!(
                "`{id}` already appeared at line {earlier}: {RULE}"
            )),
            Some((earlier, earlier_spelt)) => Err(format!(
                "`{spelt}` already appeared at line {earlier} as `{earlier_spelt}` (the same id once \
                 the blanks around it are trimmed): {RULE}"
            )),
        }
    }
}

const RULE: &str = "an export holds each invoice once (the rows of a CSV invoice are consecutive); \
    the first one stands, this one is refused (export the invoice again in a new file to change it)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_stands_and_repeats_are_refused_with_both_spellings() {
        let mut seen = SeenIds::default();
        assert_eq!(seen.first("A-1", "A-1", 2), Ok(()));
        assert_eq!(seen.first("A-2", " A-2", 3), Ok(()));
        let again = seen.first("A-1", "A-1", 9).unwrap_err();
        assert!(
            again.starts_with("`A-1` already appeared at line 2: "),
            "{again}"
        );
        let padded = seen.first("A-2", "A-2", 10).unwrap_err();
        assert!(
            padded.starts_with("`A-2` already appeared at line 3 as ` A-2`"),
            "{padded}"
        );
    }
}
