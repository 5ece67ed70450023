//! Built-in sources and sinks that need no user code.

pub mod files;
pub mod formats;
pub mod kafka;
pub mod nexmark;
pub mod nexmark_json;
pub mod positions;
pub mod sequence;
pub mod sinks;
pub mod socket;
pub mod sources;
pub mod splits;
pub mod storage;
pub mod testing;
pub mod text;
pub mod text_file;
