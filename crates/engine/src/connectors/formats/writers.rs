//! Records to bytes for the file sink ([`crate::connectors::sinks::part_files`]): JSON
//! lines and CSV, one line per record, from the values the caller's [`ToValues`] makes.

use std::sync::Arc;

use crate::connectors::formats::csv::CsvOptions;
use crate::connectors::formats::Value;
use crate::connectors::sinks::Encode;
use crate::error::{UdfError, UdfResult};

/// Turns a batch of records into values, one per record (the binding's conversion).
pub type ToValues<R> = Arc<dyn Fn(&[R], &mut Vec<Value>) -> UdfResult<()> + Send + Sync>;

/// One JSON document per line.
pub fn json_lines_encoder<R: 'static>(to_values: ToValues<R>) -> Encode<R> {
    Arc::new(move |batch, out| {
        let mut values = Vec::with_capacity(batch.len());
        to_values(batch, &mut values)?;
        for v in &values {
            serde_json::to_writer(&mut *out, v).map_err(|e| UdfError::new(format!("cannot write JSON: {e}")))?;
            out.push(b'\n');
        }
        Ok(())
    })
}

/// One CSV row per record: a map's values (in order), a list's items, or a single
/// field for any other value; nested lists and maps are written as JSON text.
pub fn csv_encoder<R: 'static>(to_values: ToValues<R>, options: CsvOptions) -> Encode<R> {
    Arc::new(move |batch, out| {
        let mut values = Vec::with_capacity(batch.len());
        to_values(batch, &mut values)?;
        let mut w = csv::WriterBuilder::new()
            .delimiter(options.delimiter)
            .quote(options.quote.unwrap_or(b'"'))
            .quote_style(if options.quote.is_some() { csv::QuoteStyle::Necessary } else { csv::QuoteStyle::Never })
            .double_quote(options.escape.is_none())
            .escape(options.escape.unwrap_or(b'\\'))
            .from_writer(std::mem::take(out));
        for v in &values {
            write_csv_row(&mut w, v, &options)?;
        }
        *out = w.into_inner().map_err(|e| UdfError::new(format!("cannot write CSV: {e}")))?;
        Ok(())
    })
}

fn write_csv_row(w: &mut csv::Writer<Vec<u8>>, v: &Value, options: &CsvOptions) -> UdfResult<()> {
    let null = options.null_value.as_deref().unwrap_or("");
    let text = |v: &Value| if *v == Value::Null { null.to_string() } else { v.csv_text() };
    let fields: Vec<String> = match v {
        Value::Map(fields) => fields.iter().map(|(_, v)| text(v)).collect(),
        Value::List(items) => items.iter().map(text).collect(),
        other => vec![text(other)],
    };
    w.write_record(&fields).map_err(|e| UdfError::new(format!("cannot write CSV: {e}")))
}

/// A Parquet column's type, for [`parquet_encoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParquetColumn {
    Bool,
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bytes,
}

/// Rows per Parquet row group the writer makes (fewer at a file's end).
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Parquet files of `columns` (snappy-compressed), one row per record: a map's fields
/// by name, a list's items by position. A value of another type than its column's (or
/// a missing field) fails naming the column and the value; null is null.
pub fn parquet_encoder<R: 'static>(
    to_values: ToValues<R>,
    columns: Vec<(String, ParquetColumn)>,
) -> crate::connectors::sinks::BulkFactory<R> {
    use arrow_schema::{DataType, Field, Schema};
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, c)| {
            let t = match c {
                ParquetColumn::Bool => DataType::Boolean,
                ParquetColumn::Int32 => DataType::Int32,
                ParquetColumn::Int64 => DataType::Int64,
                ParquetColumn::Float32 => DataType::Float32,
                ParquetColumn::Float64 => DataType::Float64,
                ParquetColumn::String => DataType::Utf8,
                ParquetColumn::Bytes => DataType::Binary,
            };
            Field::new(name, t, true)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let columns = Arc::new(columns);
    Arc::new(move || {
        Ok(Box::new(ParquetEncoder {
            to_values: to_values.clone(),
            schema: schema.clone(),
            columns: columns.clone(),
            writer: None,
            values: Vec::new(),
        }) as Box<dyn crate::connectors::sinks::BulkEncoder<R>>)
    })
}

struct ParquetEncoder<R> {
    to_values: ToValues<R>,
    schema: arrow_schema::SchemaRef,
    columns: Arc<Vec<(String, ParquetColumn)>>,
    writer: Option<parquet::arrow::ArrowWriter<Vec<u8>>>,
    values: Vec<Value>,
}

fn parquet_error(e: impl std::fmt::Display) -> UdfError {
    UdfError::new(format!("cannot write Parquet: {e}"))
}

impl<R> ParquetEncoder<R> {
    /// The record batch of `self.values`.
    fn batch(&self) -> UdfResult<arrow_array::RecordBatch> {
        use arrow_array::builder::*;
        use arrow_array::ArrayRef;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (i, (name, column)) in self.columns.iter().enumerate() {
            let field = |v: &Value| -> Value {
                match v {
                    Value::Map(fields) => {
                        fields.iter().find(|(k, _)| k == name).map_or(Value::Null, |(_, v)| v.clone())
                    }
                    Value::List(items) => items.get(i).cloned().unwrap_or(Value::Null),
                    other if i == 0 => other.clone(),
                    _ => Value::Null,
                }
            };
            let bad = |v: &Value, what: &str| {
                UdfError::new(format!("cannot write Parquet: column {name} takes {what}, got {}", v.csv_text()))
            };
            macro_rules! build {
                ($builder:expr, $what:expr, $conv:expr) => {{
                    let mut b = $builder;
                    for v in &self.values {
                        match field(v) {
                            Value::Null => b.append_null(),
                            x => b.append_value($conv(&x).ok_or_else(|| bad(&x, $what))?),
                        }
                    }
                    Arc::new(b.finish()) as ArrayRef
                }};
            }
            let int = |x: &Value| match x {
                Value::Int(i) => Some(*i),
                Value::Bool(b) => Some(i64::from(*b)),
                _ => None,
            };
            let float = |x: &Value| match x {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                _ => None,
            };
            arrays.push(match column {
                ParquetColumn::Bool => build!(BooleanBuilder::new(), "booleans", |x: &Value| match x {
                    Value::Bool(b) => Some(*b),
                    _ => None,
                }),
                ParquetColumn::Int32 => {
                    build!(Int32Builder::new(), "32-bit ints", |x: &Value| int(x).and_then(|i| i32::try_from(i).ok()))
                }
                ParquetColumn::Int64 => build!(Int64Builder::new(), "ints", int),
                ParquetColumn::Float32 => {
                    build!(Float32Builder::new(), "floats", |x: &Value| float(x).map(|f| f as f32))
                }
                ParquetColumn::Float64 => build!(Float64Builder::new(), "floats", float),
                ParquetColumn::String => build!(StringBuilder::new(), "strings", |x: &Value| match x {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                }),
                ParquetColumn::Bytes => build!(BinaryBuilder::new(), "bytes", |x: &Value| match x {
                    Value::Bytes(b) => Some(b.clone()),
                    _ => None,
                }),
            });
        }
        arrow_array::RecordBatch::try_new(self.schema.clone(), arrays).map_err(parquet_error)
    }
}

impl<R> crate::connectors::sinks::BulkEncoder<R> for ParquetEncoder<R> {
    fn add(&mut self, records: &[R], out: &mut Vec<u8>) -> UdfResult<()> {
        use parquet::basic::Compression;
        use parquet::file::properties::WriterProperties;
        self.values.clear();
        (self.to_values)(records, &mut self.values)?;
        let batch = self.batch()?;
        if self.writer.is_none() {
            let props = WriterProperties::builder()
                .set_compression(Compression::SNAPPY)
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                .build();
            let w = parquet::arrow::ArrowWriter::try_new(Vec::new(), self.schema.clone(), Some(props))
                .map_err(parquet_error)?;
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("made above");
        w.write(&batch).map_err(parquet_error)?;
        // The writer counts its own offsets: what it wrote so far can go out now.
        out.append(w.inner_mut());
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> UdfResult<()> {
        if let Some(w) = self.writer.take() {
            out.extend(w.into_inner().map_err(parquet_error)?);
        }
        Ok(())
    }
}
