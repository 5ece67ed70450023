//! CSV files (header, delimiter, quote and escape characters, through the `csv` crate).
//!
//! A quoted field may hold newlines, so a byte range cut inside a file cannot tell where
//! its first record starts: each file is read whole by one reader (files are dealt
//! round-robin; split a large CSV into several files to read it in parallel). A reader's
//! position is the byte offset of its next record, so a restore resumes mid-file.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use crate::connectors::files::{FileFormat, ShareReader};
use crate::connectors::formats::{FromValues, Malformed, Value, SKIP_HINT};
use crate::connectors::storage::{self, Input};
use crate::connectors::text_file::{count_newlines, plan_shares_with, FileShare};
use crate::error::{UdfError, UdfResult};
use crate::record::Record;

/// A column's type: what its text is read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    String,
    Int,
    Float,
    Bool,
}

/// How CSV files are read and written (PyFlink's `CsvSchema`).
#[derive(Clone, Debug)]
pub struct CsvOptions {
    pub delimiter: u8,
    /// `None`: no quoting.
    pub quote: Option<u8>,
    /// `None`: a quote inside a quoted field is doubled (`""`).
    pub escape: Option<u8>,
    /// The first line of each file is a header (skipped; it names the fields when
    /// `columns` is empty).
    pub header: bool,
    /// Skip the first data row of each file too.
    pub skip_first_data_row: bool,
    /// Lines starting with this byte are comments.
    pub comment: Option<u8>,
    /// A field with this text is null (empty fields of non-string columns always are).
    pub null_value: Option<String>,
    /// Named, typed columns; empty: every field a string, named by the header if any
    /// (else the row is a list).
    pub columns: Vec<(String, Column)>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: b',',
            quote: Some(b'"'),
            escape: None,
            header: false,
            skip_first_data_row: false,
            comment: None,
            null_value: None,
            columns: Vec::new(),
        }
    }
}

/// CSV rows as values: a map of the columns (or the header's names), or a list of
/// strings when the file has neither. Each file is one share, read whole by one reader.
pub fn csv_format<R: Record>(options: CsvOptions, convert: FromValues<R>, malformed: Malformed) -> FileFormat<R> {
    let options = Arc::new(options);
    FileFormat {
        name: "CSV",
        plan: Arc::new(|files, index, peers| plan_shares_with(files, index, peers, u64::MAX)),
        open: Arc::new(move |shares| {
            Box::new(CsvShares {
                pending: shares.into(),
                open: None,
                options: options.clone(),
                convert: convert.clone(),
                malformed,
                values: Vec::new(),
                record: csv::ByteRecord::new(),
            })
        }),
        split_min: u64::MAX,
    }
}

struct OpenCsv {
    share: FileShare,
    reader: csv::Reader<Input>,
    /// The header's names, when it names the fields.
    names: Option<Arc<[String]>>,
}

struct CsvShares<R> {
    pending: VecDeque<FileShare>,
    open: Option<OpenCsv>,
    options: Arc<CsvOptions>,
    convert: FromValues<R>,
    malformed: Malformed,
    values: Vec<Value>,
    record: csv::ByteRecord,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> UdfError {
    UdfError::new(format!("{}: {e}", path.display()))
}

/// Opens a share at its start: reads the header (when there is one) from the file's
/// beginning, then goes to `share.start` (after the header and skipped row, at 0).
fn open_csv(share: FileShare, options: &CsvOptions) -> UdfResult<OpenCsv> {
    let file = storage::open(&share.path).map_err(|e| UdfError::new(e.to_string()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter)
        .quoting(options.quote.is_some())
        .quote(options.quote.unwrap_or(b'"'))
        .double_quote(options.escape.is_none())
        .escape(options.escape)
        .comment(options.comment)
        .from_reader(file);
    let mut names = None;
    let mut record = csv::ByteRecord::new();
    if options.header {
        if reader.read_byte_record(&mut record).map_err(|e| io_error(&share.path, e))? && options.columns.is_empty() {
            let header: Vec<String> = record.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
            names = Some(header.into());
        }
        if share.start == 0 && options.skip_first_data_row {
            reader.read_byte_record(&mut record).map_err(|e| io_error(&share.path, e))?;
        }
    } else if share.start == 0 && options.skip_first_data_row {
        reader.read_byte_record(&mut record).map_err(|e| io_error(&share.path, e))?;
    }
    if share.start > 0 {
        let mut at = csv::Position::new();
        at.set_byte(share.start);
        reader.seek(at).map_err(|e| io_error(&share.path, e))?;
    }
    Ok(OpenCsv { share, reader, names })
}

/// The value of one row, or why it is malformed.
fn row_value(record: &csv::ByteRecord, options: &CsvOptions, names: Option<&Arc<[String]>>) -> Result<Value, String> {
    let text = |i: usize, f: &[u8]| -> Result<String, String> {
        String::from_utf8(f.to_vec())
            .map_err(|e| format!("field {} is not valid UTF-8 (bad byte at {})", i + 1, e.utf8_error().valid_up_to()))
    };
    let is_null = |f: &[u8]| options.null_value.as_deref().is_some_and(|n| n.as_bytes() == f);
    if !options.columns.is_empty() {
        if record.len() != options.columns.len() {
            return Err(format!("expected {} fields, found {}", options.columns.len(), record.len()));
        }
        let mut fields = Vec::with_capacity(record.len());
        for (i, ((name, column), f)) in options.columns.iter().zip(record.iter()).enumerate() {
            let value = if is_null(f) || (f.is_empty() && *column != Column::String) {
                Value::Null
            } else {
                let t = text(i, f)?;
                let bad = |what: &str| format!("field {} ({name}) is not {what}: {t:?}", i + 1);
                match column {
                    Column::String => Value::Str(t),
                    Column::Int => Value::Int(t.trim().parse().map_err(|_| bad("an integer"))?),
                    Column::Float => Value::Float(t.trim().parse().map_err(|_| bad("a number"))?),
                    Column::Bool => match t.trim().to_ascii_lowercase().as_str() {
                        "true" => Value::Bool(true),
                        "false" => Value::Bool(false),
                        _ => return Err(bad("true or false")),
                    },
                }
            };
            fields.push((name.clone(), value));
        }
        return Ok(Value::Map(fields));
    }
    let values = record
        .iter()
        .enumerate()
        .map(|(i, f)| if is_null(f) { Ok(Value::Null) } else { text(i, f).map(Value::Str) })
        .collect::<Result<Vec<_>, _>>()?;
    match names {
        Some(names) if names.len() != values.len() => {
            Err(format!("expected {} fields (as the header has), found {}", names.len(), values.len()))
        }
        Some(names) => Ok(Value::Map(names.iter().cloned().zip(values).collect())),
        None => Ok(Value::List(values)),
    }
}

impl<R: Record> ShareReader<R> for CsvShares<R> {
    fn read(&mut self, max: usize, out: &mut Vec<R>, skipped: &mut u64) -> UdfResult<bool> {
        let mut more = true;
        while self.values.len() < max {
            let Some(open) = self.open.as_mut() else {
                match self.pending.pop_front() {
                    Some(share) => {
                        self.open = Some(open_csv(share, &self.options)?);
                        continue;
                    }
                    None => {
                        more = false;
                        break;
                    }
                }
            };
            if open.reader.position().byte() >= open.share.end
                || !open.reader.read_byte_record(&mut self.record).map_err(|e| io_error(&open.share.path, e))?
            {
                self.open = None;
                continue;
            }
            match row_value(&self.record, &self.options, open.names.as_ref()) {
                Ok(v) => self.values.push(v),
                Err(_) if self.malformed == Malformed::Skip => *skipped += 1,
                Err(why) => {
                    let path = &open.share.path;
                    let at = self.record.position().map_or(0, |p| p.byte());
                    let line =
                        count_newlines(path, at).map_or_else(|_| format!("byte {at}"), |n| format!("line {}", n + 1));
                    return Err(UdfError::new(format!(
                        "{}: {line}: malformed CSV row: {why}; {SKIP_HINT}",
                        path.display()
                    )));
                }
            }
        }
        (self.convert)(&mut self.values, out)?;
        self.values.clear();
        Ok(more)
    }

    fn remaining(&self) -> Vec<FileShare> {
        let open = self.open.as_ref().map(|o| FileShare {
            path: o.share.path.clone(),
            start: o.reader.position().byte(),
            end: o.share.end,
        });
        open.filter(|s| s.start < s.end).into_iter().chain(self.pending.iter().cloned()).collect()
    }
}
