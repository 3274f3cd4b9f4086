//! mediagraph: records RTSP cameras continuously into a bounded local cache and uploads the
//! media to an asset store, driven by LVA media-graph topologies. See ARCHITECTURE.md.
pub mod cache;
pub mod camera;
pub mod datadir;
pub mod events;
pub mod graph;
pub mod http;
pub mod playback;
pub mod plugin;
pub mod record;
pub mod retry;
pub mod service;
pub mod source;
pub mod sync;
pub mod time;
pub mod topology;
pub mod upload;
