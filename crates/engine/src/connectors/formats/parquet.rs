//! Parquet files, through the `parquet` crate's Arrow reader.
//!
//! A share is one row group, in rows: `start..end` are the file's row numbers of the
//! group's first row and past its last. Row groups are dealt round-robin to the
//! readers, in file order; a reader's position is the row it reads next, so a restore
//! resumes inside a row group (file, row group, row), and a rescale deals the groups
//! left without cutting them.
//!
//! Records are either rows (values: a map of the columns) or whole Arrow record
//! batches handed on as they are, for vectorised work.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::connectors::files::{FileFormat, ShareReader};
use crate::connectors::formats::{FromValues, Malformed, Value, SKIP_HINT};
use crate::connectors::storage::Chunks;
use crate::connectors::text_file::FileShare;
use crate::error::{UdfError, UdfResult};
use crate::record::Record;

/// Turns record batches into records (the binding's: one call per poll).
pub type FromBatches<R> = Arc<dyn Fn(Vec<RecordBatch>, &mut Vec<R>) -> UdfResult<()> + Send + Sync>;

/// What a Parquet source makes of its rows.
pub enum ParquetOutput<R> {
    /// One record per row.
    Rows(FromValues<R>),
    /// One record per Arrow record batch of up to `rows` rows.
    Batches { convert: FromBatches<R>, rows: usize },
}

impl<R> Clone for ParquetOutput<R> {
    fn clone(&self) -> Self {
        match self {
            ParquetOutput::Rows(f) => ParquetOutput::Rows(f.clone()),
            ParquetOutput::Batches { convert, rows } => {
                ParquetOutput::Batches { convert: convert.clone(), rows: *rows }
            }
        }
    }
}

/// Rows read per Arrow batch when records are rows.
const ROWS_PER_BATCH: usize = 1024;

fn builder(path: &Path) -> io::Result<ParquetRecordBatchReaderBuilder<Chunks>> {
    let file = Chunks::open(path)?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a readable Parquet file: {e}", path.display()))
    })
}

/// The first row of each row group, and the file's row count last.
fn group_starts(builder: &ParquetRecordBatchReaderBuilder<Chunks>) -> Vec<u64> {
    let mut starts = vec![0u64];
    for group in builder.metadata().row_groups() {
        let last = *starts.last().unwrap_or(&0);
        starts.push(last + u64::try_from(group.num_rows()).unwrap_or(0));
    }
    starts
}

/// The row groups of `files` that reader `index` of `peers` reads: row group `g` (in
/// file order, counted over all files) goes to reader `g % peers`. Empty groups are left out.
pub fn plan_row_groups(files: &[PathBuf], index: usize, peers: usize) -> io::Result<Vec<FileShare>> {
    let mut shares = Vec::new();
    let mut g = 0usize;
    for path in files {
        let starts = group_starts(&builder(path)?);
        for w in starts.windows(2) {
            if g % peers.max(1) == index && w[0] < w[1] {
                shares.push(FileShare { path: path.clone(), start: w[0], end: w[1] });
            }
            g += 1;
        }
    }
    Ok(shares)
}

/// Parquet files as rows or record batches; see the module's documentation.
pub fn parquet_format<R: Record>(output: ParquetOutput<R>, malformed: Malformed) -> FileFormat<R> {
    FileFormat {
        name: "Parquet",
        plan: Arc::new(plan_row_groups),
        open: Arc::new(move |shares| {
            Box::new(ParquetShares {
                pending: shares.into(),
                open: None,
                output: output.clone(),
                malformed,
                values: Vec::new(),
                batches: Vec::new(),
            })
        }),
        split_min: u64::MAX,
    }
}

struct OpenGroup {
    share: FileShare,
    /// The row numbers where the file's row groups start.
    starts: Vec<u64>,
    reader: ParquetRecordBatchReader,
    /// The row read next.
    next: u64,
    /// A batch read and not all returned: the batch and how many rows were.
    batch: Option<(RecordBatch, usize)>,
}

impl OpenGroup {
    /// The 0-based row group of row `row`.
    fn group_of(&self, row: u64) -> usize {
        self.starts.partition_point(|&s| s <= row).saturating_sub(1)
    }
}

fn open_group(share: FileShare, batch_rows: usize) -> UdfResult<OpenGroup> {
    let err = |e: io::Error| UdfError::new(e.to_string());
    let b = builder(&share.path).map_err(err)?;
    let starts = group_starts(&b);
    let groups: Vec<usize> =
        (0..starts.len() - 1).filter(|&g| starts[g] < share.end && starts[g + 1] > share.start).collect();
    let first = groups.first().map_or(share.start, |&g| starts[g]);
    let limit = usize::try_from(share.end.saturating_sub(share.start)).unwrap_or(usize::MAX);
    let offset = usize::try_from(share.start.saturating_sub(first)).unwrap_or(0);
    let reader = b
        .with_row_groups(groups)
        .with_offset(offset)
        .with_limit(limit)
        .with_batch_size(batch_rows.max(1))
        .build()
        .map_err(|e| UdfError::new(format!("{}: cannot read row groups: {e}", share.path.display())))?;
    Ok(OpenGroup { next: share.start, share, starts, reader, batch: None })
}

struct ParquetShares<R> {
    pending: VecDeque<FileShare>,
    open: Option<OpenGroup>,
    output: ParquetOutput<R>,
    malformed: Malformed,
    values: Vec<Value>,
    batches: Vec<RecordBatch>,
}

impl<R: Record> ShareReader<R> for ParquetShares<R> {
    fn read(&mut self, max: usize, out: &mut Vec<R>, skipped: &mut u64) -> UdfResult<bool> {
        let batch_rows = match &self.output {
            ParquetOutput::Rows(_) => ROWS_PER_BATCH,
            ParquetOutput::Batches { rows, .. } => *rows,
        };
        let mut more = true;
        while self.values.len() + self.batches.len() < max {
            let Some(open) = self.open.as_mut() else {
                match self.pending.pop_front() {
                    Some(share) => {
                        self.open = Some(open_group(share, batch_rows)?);
                        continue;
                    }
                    None => {
                        more = false;
                        break;
                    }
                }
            };
            let Some((batch, done)) = open.batch.take() else {
                match open.reader.next() {
                    None => self.open = None,
                    Some(Ok(batch)) => open.batch = Some((batch, 0)),
                    Some(Err(e)) => {
                        let group = open.group_of(open.next);
                        if self.malformed == Malformed::Fail {
                            return Err(UdfError::new(format!(
                                "{}: row group {group}: cannot decode: {e}; {SKIP_HINT}",
                                open.share.path.display()
                            )));
                        }
                        // Skip the rest of the row group, go on with the next.
                        let end = open.starts[group + 1].min(open.share.end);
                        *skipped += end - open.next;
                        let rest = FileShare { path: open.share.path.clone(), start: end, end: open.share.end };
                        self.open = None;
                        if rest.start < rest.end {
                            self.pending.push_front(rest);
                        }
                    }
                }
                continue;
            };
            match &self.output {
                ParquetOutput::Batches { .. } => {
                    open.next += (batch.num_rows() - done) as u64;
                    self.batches.push(batch.slice(done, batch.num_rows() - done));
                }
                ParquetOutput::Rows(_) => {
                    let n = (max - self.values.len()).min(batch.num_rows() - done);
                    let part = batch.slice(done, n);
                    match batch_rows_values(&part) {
                        Ok(rows) => self.values.extend(rows),
                        Err(why) => {
                            return Err(UdfError::new(format!(
                                "{}: row group {}: {why}",
                                open.share.path.display(),
                                open.group_of(open.next)
                            )))
                        }
                    }
                    open.next += n as u64;
                    if done + n < batch.num_rows() {
                        open.batch = Some((batch, done + n));
                    }
                }
            }
        }
        match &self.output {
            ParquetOutput::Rows(convert) => convert(&mut self.values, out)?,
            ParquetOutput::Batches { convert, .. } => convert(std::mem::take(&mut self.batches), out)?,
        }
        self.values.clear();
        Ok(more)
    }

    fn remaining(&self) -> Vec<FileShare> {
        let open =
            self.open.as_ref().map(|o| FileShare { path: o.share.path.clone(), start: o.next, end: o.share.end });
        open.filter(|s| s.start < s.end).into_iter().chain(self.pending.iter().cloned()).collect()
    }
}

/// One value per row of `batch`: a map of its columns.
pub fn batch_rows_values(batch: &RecordBatch) -> Result<Vec<Value>, String> {
    let schema = batch.schema();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        columns.push(column_values(column, field.name())?.into_iter());
    }
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    Ok((0..batch.num_rows())
        .map(|_| {
            Value::Map(
                names
                    .iter()
                    .zip(columns.iter_mut())
                    .map(|(n, c)| ((*n).clone(), c.next().unwrap_or(Value::Null)))
                    .collect(),
            )
        })
        .collect())
}

/// The values of a column. Types without a value of their own (dates, times,
/// timestamps, decimals, durations...) come as their text (ISO 8601 for times).
fn column_values(col: &ArrayRef, name: &str) -> Result<Vec<Value>, String> {
    let n = col.len();
    let mut out = Vec::with_capacity(n);
    macro_rules! each {
        ($a:expr, $conv:expr) => {{
            let a = $a;
            for i in 0..n {
                out.push(if a.is_null(i) { Value::Null } else { $conv(a.value(i)) });
            }
        }};
    }
    let recast = |to: &DataType| -> Result<Vec<Value>, String> {
        let c = arrow_cast::cast(col, to).map_err(|e| {
            format!(
                "column {name}: type {} cannot be read as records ({e}); read record batches instead",
                col.data_type()
            )
        })?;
        column_values(&c, name)
    };
    match col.data_type() {
        DataType::Null => out.resize(n, Value::Null),
        DataType::Boolean => each!(col.as_boolean(), Value::Bool),
        DataType::Int8 => each!(col.as_primitive::<Int8Type>(), |v: i8| Value::Int(v.into())),
        DataType::Int16 => each!(col.as_primitive::<Int16Type>(), |v: i16| Value::Int(v.into())),
        DataType::Int32 => each!(col.as_primitive::<Int32Type>(), |v: i32| Value::Int(v.into())),
        DataType::Int64 => each!(col.as_primitive::<Int64Type>(), Value::Int),
        DataType::UInt8 => each!(col.as_primitive::<UInt8Type>(), |v: u8| Value::Int(v.into())),
        DataType::UInt16 => each!(col.as_primitive::<UInt16Type>(), |v: u16| Value::Int(v.into())),
        DataType::UInt32 => each!(col.as_primitive::<UInt32Type>(), |v: u32| Value::Int(v.into())),
        DataType::UInt64 => {
            each!(col.as_primitive::<UInt64Type>(), |v: u64| i64::try_from(v)
                .map_or(Value::Float(v as f64), Value::Int))
        }
        DataType::Float32 => each!(col.as_primitive::<Float32Type>(), |v: f32| Value::Float(v.into())),
        DataType::Float64 => each!(col.as_primitive::<Float64Type>(), Value::Float),
        DataType::Utf8 => each!(col.as_string::<i32>(), |v: &str| Value::Str(v.to_owned())),
        DataType::Binary => each!(col.as_binary::<i32>(), |v: &[u8]| Value::Bytes(v.to_vec())),
        DataType::List(_) => {
            let a = col.as_list::<i32>();
            for i in 0..n {
                out.push(if a.is_null(i) { Value::Null } else { Value::List(column_values(&a.value(i), name)?) });
            }
        }
        DataType::Struct(fields) => {
            let a = col.as_struct();
            let mut children = Vec::new();
            for (f, c) in fields.iter().zip(a.columns()) {
                children.push((f.name().clone(), column_values(c, name)?.into_iter()));
            }
            for i in 0..n {
                let row: Vec<(String, Value)> =
                    children.iter_mut().map(|(k, c)| (k.clone(), c.next().unwrap_or(Value::Null))).collect();
                out.push(if a.is_null(i) { Value::Null } else { Value::Map(row) });
            }
        }
        DataType::LargeUtf8 | DataType::Utf8View => return recast(&DataType::Utf8),
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            return recast(&DataType::Binary)
        }
        DataType::LargeList(f) | DataType::FixedSizeList(f, _) | DataType::ListView(f) | DataType::LargeListView(f) => {
            return recast(&DataType::List(f.clone()))
        }
        DataType::Dictionary(_, value) => return recast(value),
        DataType::Float16 => return recast(&DataType::Float64),
        _ => return recast(&DataType::Utf8),
    }
    Ok(out)
}
