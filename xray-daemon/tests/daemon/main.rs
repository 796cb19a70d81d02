//! The daemon end to end over real sockets on 127.0.0.1: UDP in, PutTraceSegments out to a local X-Ray endpoint, the
//! signing proxy on TCP, and the `xray` binary itself.

mod binary;
mod browser;
mod console;
mod helpers;
mod otlp;
mod otlp_python;
mod proxy;
mod sdk;
mod segments;
