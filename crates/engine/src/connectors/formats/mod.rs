//! File formats for [`crate::connectors::files`]: text lines, JSON lines, CSV and
//! Parquet, read into [`Value`] trees that the caller's [`FromValues`] turns into its
//! records (or, for Parquet, into Arrow record batches handed on whole), and written
//! from values by the encoders of [`writers`].
//!
//! Malformed input (a line that is not JSON, a CSV row with the wrong number of fields
//! or a field that is not of its column's type, a Parquet row group that cannot be
//! decoded) fails the job naming the file and line or row group and the parse error,
//! unless [`Malformed::Skip`] is asked for: then it is skipped and counted, and each
//! reader prints the count to stderr at its end.

pub mod csv;
pub mod parquet;
pub mod value;
pub mod writers;

use std::sync::Arc;

pub use value::Value;

use crate::connectors::files::{FileFormat, ShareReader};
use crate::connectors::text::EncodingErrors;
use crate::connectors::text_file::{plan_shares_with, FileShare, LineReader};
use crate::error::{UdfError, UdfResult};
use crate::record::Record;

/// Turns a batch of parsed lines (`T`) into records, draining `parsed` (one call per
/// batch).
pub type FromParsed<T, R> = Arc<dyn Fn(&mut Vec<T>, &mut Vec<R>) -> UdfResult<()> + Send + Sync>;

/// Turns a batch of values into records, draining `values` (the binding's conversion:
/// one call per batch).
pub type FromValues<R> = FromParsed<Value, R>;

/// What to do with a record that does not parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Malformed {
    /// Fail the job, naming the file and line (or row group) and the error.
    #[default]
    Fail,
    /// Skip it and count it.
    Skip,
}

/// What the user passes to skip malformed records (for messages).
pub const SKIP_HINT: &str = "to skip such records, use ignore_parse_errors() on the format (skip_malformed=True)";

/// One record per line (`R::from_lines`), files from `split_min` bytes on cut into
/// byte ranges (see [`crate::connectors::text_file`]).
pub fn text_lines<R: Record>(errors: EncodingErrors, split_min: u64) -> FileFormat<R> {
    FileFormat {
        name: "text",
        plan: Arc::new(move |files, index, peers| plan_shares_with(files, index, peers, split_min)),
        open: Arc::new(move |shares| Box::new(TextLines { lines: LineReader::new(shares, errors), buf: Vec::new() })),
        split_min,
    }
}

struct TextLines {
    lines: LineReader,
    buf: Vec<String>,
}

impl<R: Record> ShareReader<R> for TextLines {
    fn read(&mut self, max: usize, out: &mut Vec<R>, _skipped: &mut u64) -> UdfResult<bool> {
        let more = self.lines.next_batch(max, &mut self.buf).map_err(|e| UdfError::new(e.to_string()))?;
        R::from_lines(&mut self.buf, out);
        self.buf.clear();
        Ok(more)
    }

    fn remaining(&self) -> Vec<FileShare> {
        self.lines.remaining()
    }
}

/// One JSON value per line (blank lines are skipped), split by byte ranges as text
/// lines are: a JSON line holds no raw newline.
pub fn json_lines<R: Record>(convert: FromValues<R>, malformed: Malformed, split_min: u64) -> FileFormat<R> {
    let words = JsonLineWords { format: "JSON lines", not_a: "not valid JSON", skip_hint: SKIP_HINT };
    json_lines_of(words, convert, malformed, split_min)
}

/// What the messages of a JSON-lines format say.
#[derive(Clone, Copy, Debug)]
pub struct JsonLineWords {
    /// The format's name ("JSON lines").
    pub format: &'static str,
    /// A line that does not parse is "not valid JSON" (then the parser's error).
    pub not_a: &'static str,
    /// How to skip such lines instead ([`SKIP_HINT`] for the file formats).
    pub skip_hint: &'static str,
}

/// JSON lines each deserialized as a `T` (a typed line, e.g. a Nexmark event), then
/// made records by `convert`.
pub fn json_lines_of<T, R>(
    words: JsonLineWords,
    convert: FromParsed<T, R>,
    malformed: Malformed,
    split_min: u64,
) -> FileFormat<R>
where
    T: serde::de::DeserializeOwned + 'static,
    R: Record,
{
    FileFormat {
        name: words.format,
        plan: Arc::new(move |files, index, peers| plan_shares_with(files, index, peers, split_min)),
        open: Arc::new(move |shares| {
            Box::new(JsonLines {
                lines: LineReader::new(shares, EncodingErrors::Strict),
                buf: Vec::new(),
                parsed: Vec::new(),
                convert: convert.clone(),
                malformed,
                words,
            })
        }),
        split_min,
    }
}

struct JsonLines<T, R> {
    lines: LineReader,
    buf: Vec<String>,
    parsed: Vec<T>,
    convert: FromParsed<T, R>,
    malformed: Malformed,
    words: JsonLineWords,
}

impl<T: serde::de::DeserializeOwned + 'static, R: Record> ShareReader<R> for JsonLines<T, R> {
    fn read(&mut self, max: usize, out: &mut Vec<R>, skipped: &mut u64) -> UdfResult<bool> {
        let mut more = true;
        while more && self.parsed.len() < max {
            self.buf.clear();
            more = self.lines.next_batch(1, &mut self.buf).map_err(|e| UdfError::new(e.to_string()))?;
            let Some(line) = self.buf.pop() else { continue };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<T>(&line) {
                Ok(v) => self.parsed.push(v),
                Err(_) if self.malformed == Malformed::Skip => *skipped += 1,
                Err(e) => {
                    return Err(UdfError::new(format!(
                        "{}: {} ({e}); {}",
                        self.lines.last_line_place(),
                        self.words.not_a,
                        self.words.skip_hint
                    )))
                }
            }
        }
        (self.convert)(&mut self.parsed, out)?;
        self.parsed.clear();
        Ok(more)
    }

    fn remaining(&self) -> Vec<FileShare> {
        self.lines.remaining()
    }
}

#[cfg(test)]
mod tests {
    use super::csv::{csv_format, Column, CsvOptions};
    use super::parquet::{parquet_format, ParquetOutput};
    use super::*;
    use crate::connectors::files::FileFormat;
    use crate::temp_dir::TempDir;
    use proptest::prelude::*;

    /// Values as their JSON text (String records).
    fn as_json() -> FromValues<String> {
        Arc::new(|values, out| {
            out.extend(values.drain(..).map(|v| serde_json::to_string(&v).unwrap()));
            Ok(())
        })
    }

    /// Every record of `shares` read `max` at a time, and the skip count.
    fn read_all(format: &FileFormat<String>, shares: Vec<FileShare>, max: usize) -> UdfResult<(Vec<String>, u64)> {
        let mut reader = (format.open)(shares);
        let mut out = Vec::new();
        let mut skipped = 0;
        while reader.read(max, &mut out, &mut skipped)? {}
        Ok((out, skipped))
    }

    /// Reads `k` records, then what is left through a new reader of `remaining()`.
    fn read_resumed(format: &FileFormat<String>, shares: Vec<FileShare>, k: usize) -> Vec<String> {
        let mut reader = (format.open)(shares);
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut more = true;
        while more && out.len() < k {
            more = reader.read(1, &mut out, &mut skipped).unwrap();
        }
        let rest = reader.remaining();
        out.extend(read_all(format, rest, 3).unwrap().0);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// JSON lines cut into byte ranges anywhere: each value read once, in order.
        #[test]
        fn json_lines_split_reads_every_value_once(values in prop::collection::vec(-1000i64..1000, 0..60), workers in 1usize..5, k in 0usize..70) {
            let dir = TempDir::new("formats-test");
            let path = dir.0.join("v.jsonl");
            let text: String = values.iter().map(|v| format!("{{\"v\": {v}}}\n")).collect();
            std::fs::write(&path, text).unwrap();
            let format = json_lines(as_json(), Malformed::Fail, 0);
            let want: Vec<String> = values.iter().map(|v| format!("{{\"v\":{v}}}")).collect();
            let mut got = Vec::new();
            for w in 0..workers {
                let shares = (format.plan)(std::slice::from_ref(&path), w, workers).unwrap();
                got.extend(read_resumed(&format, shares, k));
            }
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn json_lines_errors_name_the_line_and_skip_counts() {
        let dir = TempDir::new("formats-test");
        let path = dir.0.join("bad.jsonl");
        std::fs::write(&path, "{\"a\": 1}\n\n{oops\n[2]\n").unwrap();
        let shares =
            (json_lines::<String>(as_json(), Malformed::Fail, 0).plan)(std::slice::from_ref(&path), 0, 1).unwrap();
        let err = read_all(&json_lines(as_json(), Malformed::Fail, 0), shares.clone(), 10).unwrap_err().message;
        assert!(err.starts_with(&format!("{}: line 3: not valid JSON (", path.display())), "{err}");
        let (got, skipped) = read_all(&json_lines(as_json(), Malformed::Skip, 0), shares, 10).unwrap();
        assert_eq!((got, skipped), (vec!["{\"a\":1}".to_string(), "[2]".to_string()], 1));
    }

    #[test]
    fn csv_reads_quoted_newlines_typed_columns_and_resumes_mid_file() {
        let dir = TempDir::new("formats-test");
        let path = dir.0.join("t.csv");
        std::fs::write(&path, "name,n,ok\n\"a\nb\",1,true\n\"c\"\"d\",2,FALSE\ne,,true\n").unwrap();
        let options = CsvOptions {
            header: true,
            columns: vec![("name".into(), Column::String), ("n".into(), Column::Int), ("ok".into(), Column::Bool)],
            ..CsvOptions::default()
        };
        let format = csv_format(options, as_json(), Malformed::Fail);
        let want = vec![
            r#"{"name":"a\nb","n":1,"ok":true}"#.to_string(),
            r#"{"name":"c\"d","n":2,"ok":false}"#.to_string(),
            r#"{"name":"e","n":null,"ok":true}"#.to_string(),
        ];
        let shares = (format.plan)(std::slice::from_ref(&path), 0, 1).unwrap();
        for k in 0..4 {
            assert_eq!(read_resumed(&format, shares.clone(), k), want, "k={k}");
        }
        // A file goes whole to one reader.
        assert!((format.plan)(std::slice::from_ref(&path), 1, 2).unwrap().is_empty());
        std::fs::write(&path, "name,n,ok\na,1,true\nb,x,true\n").unwrap();
        let shares = (format.plan)(std::slice::from_ref(&path), 0, 1).unwrap();
        let err = read_all(&format, shares, 10).unwrap_err().message;
        assert!(
            err.starts_with(&format!("{}: line 3: malformed CSV row: field 2 (n) is not an integer", path.display())),
            "{err}"
        );
    }

    #[test]
    fn parquet_row_groups_are_dealt_and_resume_at_a_row() {
        use ::parquet::arrow::ArrowWriter;
        use ::parquet::file::properties::WriterProperties;
        use arrow_array::{Int64Array, RecordBatch};
        let dir = TempDir::new("formats-test");
        let mut files = Vec::new();
        let mut want = Vec::new();
        for (f, n) in [(0, 25i64), (1, 9)] {
            let path = dir.0.join(format!("{f}.parquet"));
            let ids = Int64Array::from_iter_values(f * 100..f * 100 + n);
            let batch = RecordBatch::try_from_iter([("id", Arc::new(ids) as _)]).unwrap();
            let props = WriterProperties::builder().set_max_row_group_row_count(Some(4)).build();
            let mut w =
                ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), Some(props)).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
            want.extend((f * 100..f * 100 + n).map(|i| format!("{{\"id\":{i}}}")));
            files.push(path);
        }
        let format = parquet_format(ParquetOutput::Rows(as_json()), Malformed::Fail);
        for workers in 1..4 {
            for k in [0, 1, 3, 5, 40] {
                let mut got = Vec::new();
                for w in 0..workers {
                    let shares = (format.plan)(&files, w, workers).unwrap();
                    assert!(shares.iter().all(|s| s.end - s.start <= 4));
                    got.extend(read_resumed(&format, shares, k));
                }
                got.sort();
                let mut want = want.clone();
                want.sort();
                assert_eq!(got, want, "workers={workers} k={k}");
            }
        }
    }
}
