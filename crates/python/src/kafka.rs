//! Kafka nodes: the API's `KafkaSource`/`KafkaSink` kinds (python/ferroflow/_nodes.py)
//! turned into the engine's Kafka source and sink. Only the conversions between
//! messages and Python records live here; everything else is the engine's.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use ferroflow_engine::connectors::kafka::client::Properties;
use ferroflow_engine::connectors::kafka::sink::{kafka_sink, Delivery, KafkaSinkSpec};
use ferroflow_engine::connectors::kafka::source::{
    kafka_source, KafkaSourceSpec, SourceWatermarks, Starting, Stopping, Topics,
};
use ferroflow_engine::connectors::kafka::{Decode, Encode, MakeDecode, MakeEncode, Message, OutMessage};
use ferroflow_engine::functions::{SinkFactory, SourceFactory};
use ferroflow_engine::{UdfError, UdfResult};

use crate::errors::udf_error;
use crate::plan::{bug, timestamps, AssignTimestamps};
use crate::record::{describe, type_name, PyRec};

#[derive(FromPyObject)]
struct KafkaSourceKind<'py> {
    bootstrap: String,
    topics: Option<Vec<String>>,
    topic_pattern: Option<Py<PyAny>>,
    group_id: Option<String>,
    starting: String,
    starting_timestamp: i64,
    reset_to_earliest: bool,
    stopping: Option<String>,
    stopping_timestamp: i64,
    properties: Vec<(String, String)>,
    skip_malformed: bool,
    value_format: String,
    deserialize: Option<Py<PyAny>>,
    watermarks: Option<Bound<'py, PyAny>>,
}

#[derive(FromPyObject)]
struct KafkaSinkKind {
    bootstrap: String,
    topic: Option<String>,
    properties: Vec<(String, String)>,
    delivery: String,
    transactional_id_prefix: Option<String>,
    value_format: String,
    serialize: Option<Py<PyAny>>,
}

/// The `kafka_source` node: see `KafkaSource` in `_nodes.py` for the fields.
pub fn source(kind: &Bound<'_, PyAny>, name: &str) -> PyResult<SourceFactory<PyRec>> {
    let k: KafkaSourceKind<'_> = kind.extract()?;
    let topics = match (k.topics, k.topic_pattern) {
        (Some(names), None) => Topics::Named(names),
        (None, Some(take)) => {
            let take = Arc::new(take);
            Topics::Matching(Arc::new(move |topic: &str| {
                Python::attach(|py| take.bind(py).call1((topic,)).and_then(|r| r.is_truthy()).unwrap_or(false))
            }))
        }
        _ => return Err(bug("a Kafka source with both or neither of topics and a topic pattern")),
    };
    let starting = match k.starting.as_str() {
        "earliest" => Starting::Earliest,
        "latest" => Starting::Latest,
        "committed" => Starting::Committed { reset_to_earliest: k.reset_to_earliest },
        "timestamp" => Starting::Timestamp(k.starting_timestamp),
        other => return Err(bug(format!("Kafka starting offsets '{other}'"))),
    };
    let stopping = match k.stopping.as_deref() {
        None => None,
        Some("latest") => Some(Stopping::Latest),
        Some("timestamp") => Some(Stopping::Timestamp(k.stopping_timestamp)),
        Some(other) => return Err(bug(format!("Kafka stopping offsets '{other}'"))),
    };
    let decode: MakeDecode<PyRec> = match (k.value_format.as_str(), k.deserialize) {
        ("string", _) => Arc::new(|| Ok(Box::new(StringValues) as Box<dyn Decode<PyRec>>)),
        ("bytes", _) => Arc::new(|| Ok(Box::new(BytesValues) as Box<dyn Decode<PyRec>>)),
        ("call", Some(f)) => {
            let f = Arc::new(f);
            Arc::new(move || {
                Ok(Box::new(CallValues { f: Python::attach(|py| f.clone_ref(py)) }) as Box<dyn Decode<PyRec>>)
            })
        }
        (other, _) => return Err(bug(format!("Kafka value format '{other}'"))),
    };
    let watermarks = match k.watermarks {
        None => None,
        Some(w) => {
            let (assigner, spec, idleness_ms) = timestamps(name, w.extract::<AssignTimestamps<'_>>()?)?;
            Some(SourceWatermarks { spec, idleness_ms, assigner })
        }
    };
    Ok(kafka_source(KafkaSourceSpec {
        bootstrap: k.bootstrap,
        topics,
        group_id: k.group_id,
        starting,
        stopping,
        properties: Properties(k.properties),
        skip_malformed: k.skip_malformed,
        decode,
        watermarks,
    }))
}

/// The `kafka_sink` node: see `KafkaSink` in `_nodes.py` for the fields.
pub fn sink(kind: &Bound<'_, PyAny>) -> PyResult<SinkFactory<PyRec>> {
    let k: KafkaSinkKind = kind.extract()?;
    let delivery = match k.delivery.as_str() {
        "none" => Delivery::None,
        "at_least_once" => Delivery::AtLeastOnce,
        "exactly_once" => Delivery::ExactlyOnce,
        other => return Err(bug(format!("Kafka delivery guarantee '{other}'"))),
    };
    let encode: MakeEncode<PyRec> = match (k.value_format.as_str(), k.serialize) {
        ("string", _) => Arc::new(|| Ok(Box::new(StrValues) as Box<dyn Encode<PyRec>>)),
        ("call", Some(f)) => {
            let f = Arc::new(f);
            Arc::new(move || {
                Ok(Box::new(CallMessages { f: Python::attach(|py| f.clone_ref(py)) }) as Box<dyn Encode<PyRec>>)
            })
        }
        (other, _) => return Err(bug(format!("Kafka value format '{other}'"))),
    };
    Ok(kafka_sink(KafkaSinkSpec {
        bootstrap: k.bootstrap,
        topic: k.topic,
        properties: Properties(k.properties),
        delivery,
        transactional_id_prefix: k.transactional_id_prefix,
        encode,
    }))
}

/// `SimpleStringSchema`: the value as UTF-8 text.
struct StringValues;

impl Decode<PyRec> for StringValues {
    fn decode(&mut self, m: &Message<'_>, out: &mut Vec<PyRec>) -> Result<(), String> {
        let value = m.value.ok_or("a message without a value (a tombstone)")?;
        let text = std::str::from_utf8(value).map_err(|e| format!("the value is not UTF-8 ({e})"))?;
        Python::attach(|py| out.push(PyRec::new(PyString::new(py, text).into_any().unbind())));
        Ok(())
    }
}

/// `ByteArraySchema`: the value's bytes.
struct BytesValues;

impl Decode<PyRec> for BytesValues {
    fn decode(&mut self, m: &Message<'_>, out: &mut Vec<PyRec>) -> Result<(), String> {
        let value = m.value.ok_or("a message without a value (a tombstone)")?;
        Python::attach(|py| out.push(PyRec::new(PyBytes::new(py, value).into_any().unbind())));
        Ok(())
    }
}

/// A Python deserializer: `f(value: bytes | None)` returns the record (`None`: no
/// record). Its exception is the message's deserialization error.
struct CallValues {
    f: Py<PyAny>,
}

impl Decode<PyRec> for CallValues {
    fn decode(&mut self, m: &Message<'_>, out: &mut Vec<PyRec>) -> Result<(), String> {
        Python::attach(|py| {
            let value = m.value.map(|v| PyBytes::new(py, v));
            match self.f.bind(py).call1((value,)) {
                Ok(r) if r.is_none() => Ok(()),
                Ok(r) => {
                    out.push(PyRec::new(r.unbind()));
                    Ok(())
                }
                Err(e) => {
                    let kind = e.get_type(py).name().map_or_else(|_| "Exception".to_string(), |n| n.to_string());
                    Err(format!("{kind}: {}", e.value(py)))
                }
            }
        })
    }
}

/// `SimpleStringSchema` on the way out: `str(record)` as UTF-8, to the sink's topic.
struct StrValues;

impl Encode<PyRec> for StrValues {
    fn encode(&mut self, records: &[PyRec], out: &mut Vec<OutMessage>) -> UdfResult<()> {
        Python::attach(|py| {
            for r in records {
                let x = r.0.bind(py);
                let text = match x.cast::<PyString>() {
                    Ok(s) => s.to_str().map(str::to_owned),
                    Err(_) => x.str().and_then(|s| s.to_str().map(str::to_owned)),
                }
                .map_err(|e| udf_error(py, e, Some(x)))?;
                out.push(OutMessage { value: Some(text.into_bytes()), ..OutMessage::default() });
            }
            Ok(())
        })
    }
}

/// A Python serializer: `f(record)` returns `(topic, key, value, partition,
/// timestamp)`, each `None` or of its type (key and value bytes).
struct CallMessages {
    f: Py<PyAny>,
}

impl Encode<PyRec> for CallMessages {
    fn encode(&mut self, records: &[PyRec], out: &mut Vec<OutMessage>) -> UdfResult<()> {
        Python::attach(|py| {
            let f = self.f.bind(py);
            for r in records {
                let x = r.0.bind(py);
                let m = f.call1((x,)).map_err(|e| udf_error(py, e, Some(x)))?;
                let bad = |what: &str| {
                    UdfError::new(format!("the Kafka record serializer returned {what}")).with_record(describe(x))
                };
                let t = m.cast::<PyTuple>().map_err(|_| bad(&format!("a {}", type_name(&m))))?;
                if t.len() != 5 {
                    return Err(bad(&format!("a tuple of {} items", t.len())));
                }
                let bytes = |i: usize| -> UdfResult<Option<Vec<u8>>> {
                    let v = t.get_item(i).map_err(|e| udf_error(py, e, Some(x)))?;
                    if v.is_none() {
                        return Ok(None);
                    }
                    v.cast::<PyBytes>()
                        .map(|b| Some(b.as_bytes().to_vec()))
                        .map_err(|_| bad(&format!("a key or value of type {}, not bytes", type_name(&v))))
                };
                let get = |i: usize| t.get_item(i).map_err(|e| udf_error(py, e, Some(x)));
                let topic = get(0)?;
                let partition = get(3)?;
                let timestamp = get(4)?;
                out.push(OutMessage {
                    topic: if topic.is_none() {
                        None
                    } else {
                        Some(topic.extract().map_err(|_| bad("a topic that is not a str"))?)
                    },
                    key: bytes(1)?,
                    value: bytes(2)?,
                    partition: if partition.is_none() {
                        None
                    } else {
                        Some(partition.extract().map_err(|_| bad("a partition that is not an int"))?)
                    },
                    timestamp: if timestamp.is_none() {
                        None
                    } else {
                        Some(timestamp.extract().map_err(|_| bad("a timestamp that is not an int"))?)
                    },
                });
            }
            Ok(())
        })
    }
}
