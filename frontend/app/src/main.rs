//! The wasm binary: everything lives in the library.

fn main() {
    cruddur_frontend_app::start();
}
