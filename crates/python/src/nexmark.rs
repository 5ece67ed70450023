//! The `nexmark` and `nexmark_files` nodes (`Nexmark`, `NexmarkFiles` in
//! python/ferroflow/_nodes.py): the engine's Nexmark source and its reader of Nexmark
//! JSON lines, with their events made into the API's `Person`, `Auction` and `Bid`
//! named tuples (python/ferroflow/connectors/nexmark.py). Only that conversion lives here.

use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple, PyType};

use ferroflow_engine::connectors::files::{files_source, Listing};
use ferroflow_engine::connectors::formats::Malformed;
use ferroflow_engine::connectors::nexmark::{nexmark_source, Event, MakeEvents, NexmarkSpec};
use ferroflow_engine::connectors::nexmark_json::nexmark_json_lines;
use ferroflow_engine::connectors::text_file::SPLIT_MIN_BYTES;
use ferroflow_engine::functions::SourceFactory;

use crate::plan::bug;
use crate::record::PyRec;

#[derive(FromPyObject)]
struct NexmarkKind {
    events: Option<u64>,
    rate: Option<u64>,
    event_rate: u64,
    base_time: u64,
    out_of_order_group_size: usize,
    hot_seller_ratio: usize,
    hot_auction_ratio: usize,
    hot_bidder_ratio: usize,
    hot_channel_ratio: usize,
    active_people: usize,
    in_flight_auctions: usize,
    num_categories: usize,
    person: Py<PyType>,
    auction: Py<PyType>,
    bid: Py<PyType>,
}

#[derive(FromPyObject)]
struct NexmarkFilesKind {
    paths: Vec<String>,
    skip_malformed: bool,
    person: Py<PyType>,
    auction: Py<PyType>,
    bid: Py<PyType>,
}

/// Field counts of the three named tuples, in the order [`event`] fills them.
const PERSON_FIELDS: usize = 8;
const AUCTION_FIELDS: usize = 10;
const BID_FIELDS: usize = 7;

/// The `nexmark` node: see `NexmarkSource` in `_nodes.py` for the fields.
pub fn source(kind: &Bound<'_, PyAny>) -> PyResult<SourceFactory<PyRec>> {
    let k: NexmarkKind = kind.extract()?;
    let make = make_events(kind.py(), [k.person, k.auction, k.bid])?;
    let spec = NexmarkSpec {
        events: k.events,
        rate: k.rate,
        event_rate: k.event_rate,
        base_time: k.base_time,
        out_of_order_group_size: k.out_of_order_group_size,
        hot_seller_ratio: k.hot_seller_ratio,
        hot_auction_ratio: k.hot_auction_ratio,
        hot_bidder_ratio: k.hot_bidder_ratio,
        hot_channel_ratio: k.hot_channel_ratio,
        active_people: k.active_people,
        in_flight_auctions: k.in_flight_auctions,
        num_categories: k.num_categories,
    };
    nexmark_source(spec, make).map_err(|e| bug(e.message))
}

/// The `nexmark_files` node: Nexmark events read from JSON lines by the file source.
pub fn files(kind: &Bound<'_, PyAny>) -> PyResult<SourceFactory<PyRec>> {
    let k: NexmarkFilesKind = kind.extract()?;
    let make = make_events(kind.py(), [k.person, k.auction, k.bid])?;
    let listing = Listing { paths: k.paths.into_iter().map(Into::into).collect(), recursive: true, monitor: None };
    let malformed = if k.skip_malformed { Malformed::Skip } else { Malformed::Fail };
    Ok(files_source(listing, nexmark_json_lines(make, malformed, SPLIT_MIN_BYTES)))
}

/// Events as instances of the named tuples `classes` (person, auction, bid).
fn make_events(py: Python<'_>, classes: [Py<PyType>; 3]) -> PyResult<MakeEvents<PyRec>> {
    for (class, fields) in classes.iter().zip([PERSON_FIELDS, AUCTION_FIELDS, BID_FIELDS]) {
        check_named_tuple(class.bind(py), fields)?;
    }
    let classes = Arc::new(classes);
    Ok(Arc::new(move |events, out| {
        Python::attach(|py| {
            out.reserve(events.len());
            for e in events.drain(..) {
                out.push(PyRec::new(event(py, &classes, e)?.unbind()));
            }
            Ok(())
        })
        .map_err(|e: PyErr| ferroflow_engine::UdfError::internal(format!("making a Nexmark record: {e}")))
    }))
}

/// The API's classes must be plain named tuples of the expected width: the records are
/// built as tuples of that class.
fn check_named_tuple(class: &Bound<'_, PyType>, fields: usize) -> PyResult<()> {
    let is_tuple = class.is_subclass_of::<PyTuple>()?;
    let width = class.getattr("_fields").and_then(|f| f.len()).unwrap_or(usize::MAX);
    if !is_tuple || width != fields {
        return Err(bug(format!("Nexmark record class {class} is not a named tuple of {fields} fields")));
    }
    Ok(())
}

fn event<'py>(py: Python<'py>, classes: &[Py<PyType>; 3], e: Event) -> PyResult<Bound<'py, PyAny>> {
    let int = |v: u64| v.into_pyobject(py).map(|b| b.into_any()).unwrap_or_else(|e| match e {});
    let id = |v: usize| int(v as u64);
    let text = |s: &str| PyString::new(py, s).into_any();
    match e {
        Event::Person(p) => named_tuple(
            classes[0].bind(py),
            [
                id(p.id),
                text(&p.name),
                text(&p.email_address),
                text(&p.credit_card),
                text(&p.city),
                text(&p.state),
                int(p.date_time),
                text(&p.extra),
            ],
        ),
        Event::Auction(a) => named_tuple(
            classes[1].bind(py),
            [
                id(a.id),
                text(&a.item_name),
                text(&a.description),
                id(a.initial_bid),
                id(a.reserve),
                int(a.date_time),
                int(a.expires),
                id(a.seller),
                id(a.category),
                text(&a.extra),
            ],
        ),
        Event::Bid(b) => named_tuple(
            classes[2].bind(py),
            [
                id(b.auction),
                id(b.bidder),
                id(b.price),
                text(&b.channel),
                text(&b.url),
                int(b.date_time),
                text(&b.extra),
            ],
        ),
    }
}

/// An instance of the tuple subclass `class` holding `items`, built as `tuple.__new__`
/// builds one (the class's allocator, then the items' slots) without a Python call.
fn named_tuple<'py, const N: usize>(
    class: &Bound<'py, PyType>,
    items: [Bound<'py, PyAny>; N],
) -> PyResult<Bound<'py, PyAny>> {
    let py = class.py();
    let tp = class.as_type_ptr();
    // SAFETY: the GIL is held; `class` is a subclass of tuple (checked when the plan was
    // read), whose allocator makes a tuple of N empty slots. Every item exists before the
    // allocation, so nothing runs (no garbage collection) between it and the filling, and
    // each slot takes over one reference.
    unsafe {
        let alloc = (*tp).tp_alloc.unwrap_or(ffi::PyType_GenericAlloc);
        let obj = alloc(tp, N as ffi::Py_ssize_t);
        if obj.is_null() {
            return Err(PyErr::fetch(py));
        }
        for (i, item) in items.into_iter().enumerate() {
            ffi::PyTuple_SET_ITEM(obj, i as ffi::Py_ssize_t, item.into_ptr());
        }
        Ok(Bound::from_owned_ptr(py, obj))
    }
}
