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
