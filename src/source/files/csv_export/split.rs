//! Splits CSV text into records, strictly enough that one malformed row never takes others with
//! it.
//!
//! RFC 4180 lets a quoted field hold line breaks, so an unclosed quote makes a lenient parser
//! read the following rows as the inside of one field, until some later quote happens to close
//! it: good rows vanish into a bad one, or come out cut and glued to the wrong invoice. Here a
//! record that spans lines is taken only when it is well-formed beyond doubt:
//!
//! - a closing quote is followed by a comma or the end of the line (`"a"b` is malformed);
//! - the quote closes before the end of the file and within [`MAX_SPAN_BYTES`] of its line;
//! - the record has exactly as many fields as the header;
//! - no line after its first one has, on its own, as many fields as the header: that is a whole
//!   row read as the inside of a field.
//!
//! Otherwise only the record's first line is malformed: it comes back on its own (its cells read
//! leniently, for the id) and reading resumes at the next line, so every later row is read as if
//! the broken one were not there. A record on one line is malformed when its quotes are; quotes
//! inside an unquoted field (`12" pipe`) are text, as they always were.

use std::io::{self, Read};

/// How far past its first line a quoted field may run: a longer one is taken for an unclosed
/// quote. Memos and addresses with line breaks are far shorter; this also bounds what is held to
/// resume after a malformed record.
pub(super) const MAX_SPAN_BYTES: usize = 1024 * 1024;

/// A longer record is refused without being held in memory (as an NDJSON line).
pub(super) const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;

/// One record as read.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RawRecord {
    /// 1-based line where it starts.
    pub line: u64,
    /// Its fields (of its first line only, read leniently, when it is malformed).
    pub cells: Vec<Vec<u8>>,
    /// The text as found, without its line end (only the first line when malformed; capped at
    /// [`MAX_RECORD_BYTES`]).
    pub text: Vec<u8>,
    /// Why the record cannot be read; its following lines are read as records of their own.
    pub malformed: Option<String>,
    /// Leading fields that were read cleanly (all of them unless malformed): a field at or past
    /// this index of a malformed record cannot be trusted.
    pub sound: usize,
}

pub(super) struct Splitter<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    /// Line of the next byte.
    line: u64,
    /// Fields of a well-formed record (the header's count); `None` while reading the header.
    width: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    FieldStart,
    Unquoted,
    Quoted,
    /// Just after a quote inside a quoted field: a closing quote, or the first of `""`.
    QuoteInQuoted,
}

/// A quoted field: the record's line it starts on (0 = its first), where its opening quote is
/// in the record's text, and how many fields come before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Quote {
    line: usize,
    at: usize,
    fields: usize,
}

/// Why reading a record stopped.
enum Stop {
    /// At a line end outside quotes (consumed), or at the end of the input.
    End,
    Malformed(&'static str),
}

impl<R: Read> Splitter<R> {
    pub(super) fn new(input: R) -> Self {
        Self {
            input,
            buf: Vec::new(),
            pos: 0,
            line: 1,
            width: None,
        }
    }

    /// From now on a record spanning lines must have `width` fields.
    pub(super) fn set_width(&mut self, width: usize) {
        self.width = Some(width);
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.buf.len() && !self.refill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        if self.pos == self.buf.len() && !self.refill()? {
            return Ok(None);
        }
        Ok(Some(self.buf[self.pos]))
    }

    fn refill(&mut self) -> io::Result<bool> {
        self.buf.resize(64 * 1024, 0);
        self.pos = 0;
        loop {
            match self.input.read(&mut self.buf) {
                Ok(n) => {
                    self.buf.truncate(n);
                    return Ok(n > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.clear();
                    return Err(e);
                }
            }
        }
    }

    /// Puts `bytes` back in front of what is still to be read.
    fn unread(&mut self, bytes: &[u8]) {
        let mut rest = Vec::with_capacity(bytes.len() + self.buf.len() - self.pos);
        rest.extend_from_slice(bytes);
        rest.extend_from_slice(&self.buf[self.pos..]);
        self.buf = rest;
        self.pos = 0;
    }

    /// Consumes a line end whose first byte was `b` (`\n`, `\r\n` or a lone `\r`).
    fn line_end(&mut self, b: u8) -> io::Result<()> {
        if b == b'\r' && self.peek()? == Some(b'\n') {
            self.pos += 1;
        }
        self.line += 1;
        Ok(())
    }

    /// The next record, `None` at the end of the input.
    pub(super) fn next_record(&mut self) -> io::Result<Option<RawRecord>> {
        if self.peek()?.is_none() {
            return Ok(None);
        }
        let line = self.line;
        let mut text = Vec::new();
        let mut cells = Vec::new();
        let mut field = Vec::new();
        // Where each of the record's lines starts in `text`.
        let mut line_starts = vec![0];
        // The quoted field being read (or read last), and those that crossed a line end.
        let mut quote = Quote::default();
        let mut crossings: Vec<Quote> = Vec::new();
        let mut state = State::FieldStart;
        let stop = loop {
            let Some(b) = self.byte()? else {
                break match state {
                    State::Quoted => {
                        Stop::Malformed("a quoted field is still open at the end of the file")
                    }
                    _ => Stop::End,
                };
            };
            if matches!(b, b'\n' | b'\r') && state != State::Quoted {
                self.line_end(b)?;
                break Stop::End;
            }
            text.push(b);
            match state {
                State::FieldStart | State::Unquoted if b == b',' => {
                    cells.push(std::mem::take(&mut field));
                    state = State::FieldStart;
                }
                State::FieldStart if b == b'"' => {
                    quote = Quote {
                        line: line_starts.len() - 1,
                        at: text.len() - 1,
                        fields: cells.len(),
                    };
                    state = State::Quoted;
                }
                State::FieldStart | State::Unquoted => {
                    field.push(b);
                    state = State::Unquoted;
                }
                State::Quoted if b == b'"' => state = State::QuoteInQuoted,
                State::Quoted => {
                    field.push(b);
                    if b == b'\n' || (b == b'\r' && self.peek()? != Some(b'\n')) {
                        self.line += 1;
                        line_starts.push(text.len());
                        if crossings.last() != Some(&quote) {
                            crossings.push(quote);
                        }
                    }
                }
                State::QuoteInQuoted if b == b'"' => {
                    field.push(b);
                    state = State::Quoted;
                }
                State::QuoteInQuoted if b == b',' => {
                    cells.push(std::mem::take(&mut field));
                    state = State::FieldStart;
                }
                State::QuoteInQuoted => break Stop::Malformed("text follows a closing quote"),
            }
            if state == State::Quoted
                && line_starts
                    .get(quote.line + 1)
                    .is_some_and(|&at| text.len() - at > MAX_SPAN_BYTES)
            {
                break Stop::Malformed("a quoted field runs on for more than 1 MiB");
            }
            if text.len() > MAX_RECORD_BYTES {
                self.skip_line()?;
                return Ok(Some(RawRecord {
                    line,
                    sound: cells.len(),
                    cells: lenient_cells(&text),
                    text,
                    malformed: Some(format!("line {line} is longer than 16 MiB")),
                }));
            }
        };
        cells.push(field);
        // Who is to blame: the quoted field that broke, or one that crossed a line end into a
        // record that cannot be right.
        let (culprit, problem) = match stop {
            Stop::Malformed(why) => (quote, why.to_owned()),
            Stop::End => match self.doubt(&text, &line_starts, line, &crossings, cells.len()) {
                Some(doubt) => doubt,
                None => {
                    return Ok(Some(RawRecord {
                        line,
                        sound: cells.len(),
                        cells,
                        text,
                        malformed: None,
                    }))
                }
            },
        };
        // The record ends with the culprit's line; the lines after it are read again on their
        // own, so nothing the culprit swallowed is lost.
        let resumes = line_starts.get(culprit.line + 1).copied();
        match resumes {
            Some(at) => {
                let mut rest = text.split_off(at);
                // A line end consumed after the record belongs to the lines read again.
                if matches!(stop, Stop::End) {
                    rest.push(b'\n');
                }
                self.unread(&rest);
                self.line = line + u64::try_from(culprit.line).unwrap_or(u64::MAX) + 1;
                while matches!(text.last(), Some(b'\n' | b'\r')) {
                    text.pop();
                }
            }
            None if matches!(stop, Stop::Malformed(_)) => text.extend(self.rest_of_line()?),
            None => {}
        }
        let mut read = cells;
        read.truncate(culprit.fields);
        read.extend(lenient_cells(text.get(culprit.at..).unwrap_or_default()));
        let at = line + u64::try_from(culprit.line).unwrap_or(u64::MAX);
        let why = match resumes {
            Some(_) => format!(
                "line {at}: a quoted field that starts on this line does not end as a field \
                 must ({problem}): an unclosed or stray `\"`? The lines after it are read on \
                 their own"
            ),
            None => format!("line {at}: {problem} (a stray `\"`?)"),
        };
        Ok(Some(RawRecord {
            line,
            sound: culprit.fields,
            cells: read,
            text,
            malformed: Some(why),
        }))
    }

    /// Why a well-formed record that crossed line ends is not to be trusted, if it is not, and
    /// the quoted field to blame. `line_starts` are its lines' offsets in `text`.
    fn doubt(
        &self,
        text: &[u8],
        line_starts: &[usize],
        line: u64,
        crossings: &[Quote],
        fields: usize,
    ) -> Option<(Quote, String)> {
        let width = self.width?;
        let last = *crossings.last()?;
        if fields != width {
            return Some((
                last,
                format!("the record it makes has {fields} fields where the header has {width}"),
            ));
        }
        (1..line_starts.len()).find_map(|i| {
            let end = line_starts.get(i + 1).map_or(text.len(), |&e| e);
            let l = &text[line_starts[i]..end];
            let l = l.strip_suffix(b"\n").unwrap_or(l);
            let l = l.strip_suffix(b"\r").unwrap_or(l);
            if lenient_cells(l).len() < width {
                return None;
            }
            let culprit = crossings.iter().rev().find(|q| q.line < i).copied()?;
            let n = line + u64::try_from(i).unwrap_or(u64::MAX);
            Some((
                culprit,
                format!("it takes in line {n}, which reads as a whole row"),
            ))
        })
    }

    /// The rest of the current line, consumed with its line end.
    fn rest_of_line(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::new();
        while let Some(b) = self.byte()? {
            if matches!(b, b'\n' | b'\r') {
                self.line_end(b)?;
                break;
            }
            if rest.len() < MAX_RECORD_BYTES {
                rest.push(b);
            }
        }
        Ok(rest)
    }

    /// Drops the rest of the current line.
    fn skip_line(&mut self) -> io::Result<()> {
        while let Some(b) = self.byte()? {
            if matches!(b, b'\n' | b'\r') {
                return self.line_end(b);
            }
        }
        Ok(())
    }
}

/// The fields of one line as a lenient reader sees them: quotes group where they can, an
/// unclosed quote runs to the end of the line, text after a closing quote is kept.
pub(super) fn lenient_cells(line: &[u8]) -> Vec<Vec<u8>> {
    let mut cells = Vec::new();
    let mut field = Vec::new();
    let mut state = State::FieldStart;
    let mut bytes = line.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        match state {
            State::FieldStart | State::Unquoted | State::QuoteInQuoted if b == b',' => {
                cells.push(std::mem::take(&mut field));
                state = State::FieldStart;
            }
            State::FieldStart if b == b'"' => state = State::Quoted,
            State::Quoted if b == b'"' && bytes.peek() == Some(&b'"') => {
                bytes.next();
                field.push(b);
            }
            State::Quoted if b == b'"' => state = State::QuoteInQuoted,
            State::Quoted => field.push(b),
            _ => {
                field.push(b);
                if state == State::FieldStart {
                    state = State::Unquoted;
                }
            }
        }
    }
    cells.push(field);
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str, width: usize) -> Vec<RawRecord> {
        let mut s = Splitter::new(text.as_bytes());
        s.set_width(width);
        std::iter::from_fn(|| s.next_record().unwrap()).collect()
    }

    fn cells(r: &RawRecord) -> Vec<String> {
        r.cells
            .iter()
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect()
    }

    #[test]
    fn quoted_fields_commas_escaped_quotes_and_line_breaks() {
        let out = split(
            "a,\"b, c\",\"say \"\"hi\"\"\"\r\nd,\"two\nlines\",\"\"\n",
            3,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(cells(&out[0]), ["a", "b, c", "say \"hi\""]);
        assert_eq!(out[0].line, 1);
        assert_eq!(cells(&out[1]), ["d", "two\nlines", ""]);
        assert_eq!(out[1].line, 2);
        assert!(out.iter().all(|r| r.malformed.is_none()));
        assert_eq!(out[1].text, b"d,\"two\nlines\",\"\"");
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_text() {
        let out = split("12\" pipe,x\"y,z\n", 3);
        assert_eq!(cells(&out[0]), ["12\" pipe", "x\"y", "z"]);
        assert!(out[0].malformed.is_none());
    }

    #[test]
    fn an_unclosed_quote_is_refused_on_its_line_and_the_next_lines_are_read_afresh() {
        let out = split("a,\"open,c\nd,\"e, f\",g\nh,i,j\n", 3);
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[0].line, 1);
        let why = out[0].malformed.as_deref().unwrap();
        assert!(
            why.starts_with("line 1: a quoted field that starts on this line does not end"),
            "{why}"
        );
        assert!(why.contains("(text follows a closing quote)"), "{why}");
        assert_eq!(out[0].text, b"a,\"open,c");
        assert_eq!(cells(&out[0])[0], "a");
        assert_eq!(
            (out[1].line, cells(&out[1])),
            (2, vec!["d".into(), "e, f".into(), "g".into()])
        );
        assert_eq!(
            (out[2].line, cells(&out[2])),
            (3, vec!["h".into(), "i".into(), "j".into()])
        );
    }

    #[test]
    fn an_unclosed_quote_that_closes_cleanly_later_is_still_caught() {
        // The stray quote pairs with `12"` two lines down: well-formed on its face, but its
        // field count is wrong, or a line in it reads as a whole row.
        for text in [
            "a,\"b,c\nd,e,f\ng,12\",h\ni,j,k\n",
            "a,\"b,c\ng,12\",h\ni,j,k\n",
        ] {
            let out = split(text, 3);
            assert!(out[0].malformed.is_some(), "{text:?}: {out:?}");
            let lines: Vec<u64> = out.iter().map(|r| r.line).collect();
            let expected: Vec<u64> = (1..=text.matches('\n').count() as u64).collect();
            assert_eq!(lines, expected, "{text:?}");
            assert!(out[1..].iter().all(|r| r.malformed.is_none()), "{out:?}");
        }
    }

    #[test]
    fn an_unclosed_quote_at_the_end_of_the_file_is_refused_alone() {
        let out = split("a,b,c\nd,\"e,f\ng,h,i", 3);
        assert_eq!(out.len(), 3);
        assert!(out[1]
            .malformed
            .as_deref()
            .unwrap()
            .contains("still open at the end of the file"));
        assert_eq!(cells(&out[2]), ["g", "h", "i"]);
        assert_eq!(out[2].line, 3);
    }

    #[test]
    fn text_after_a_closing_quote_is_malformed_on_its_line_only() {
        let out = split("a,\"b\"x,c\nd,e,f\n", 3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, b"a,\"b\"x,c");
        assert!(out[0].malformed.is_some());
        assert_eq!(cells(&out[0]), ["a", "bx", "c"]);
        assert!(out[1].malformed.is_none());
        assert_eq!(out[1].line, 2);
    }

    #[test]
    fn line_numbers_count_every_line_end_style() {
        let out = split("a,b\r\nc,d\re,\"f\r\ng\"\nh,i", 2);
        let lines: Vec<u64> = out.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 3, 5]);
    }

    #[test]
    fn a_break_after_a_good_multi_line_field_refuses_the_record_up_to_the_broken_line() {
        let out = split("a,\"memo,\nmore\",\"bad,c\nd,e,f\n", 3);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].line, 1);
        assert_eq!(out[0].text, b"a,\"memo,\nmore\",\"bad,c");
        let why = out[0].malformed.as_deref().unwrap();
        assert!(
            why.starts_with("line 2: a quoted field that starts"),
            "{why}"
        );
        assert_eq!(out[0].sound, 2);
        assert_eq!(cells(&out[0]), ["a", "memo,\nmore", "bad,c"]);
        assert_eq!(
            (out[1].line, cells(&out[1])),
            (3, vec!["d".into(), "e".into(), "f".into()])
        );
    }
}
