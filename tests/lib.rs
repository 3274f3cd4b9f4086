//! Shared support for the end-to-end tests: locating the `mediagraph` binary, starting peers
//! (test camera, GStreamer RTSP server, Azurite) and checking output with ffprobe.

pub mod azurite;
