//! Telemetry for every Cruddur binary (work in progress).
