//! Black-box tests of the Cruddur API: each test starts the real server on 127.0.0.1:0 against a fresh database and
//! speaks HTTP to it.

mod activities;
mod auth;
mod bad_input;
mod feeds;
mod helpers;
mod messages;
mod signals;
mod users;
