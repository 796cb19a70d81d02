//! Test support: real local stand-ins for everything Cruddur talks to, each started on a 127.0.0.1 port chosen by the
//! OS and stopped when dropped, so tests exercise the real protocols without any account or network.
//!
//! Used as a dev-dependency only.

pub mod browser;
pub mod otlp;
pub mod postgres;
pub mod udp_sink;
pub mod xray_control;
pub mod xray_endpoint;
