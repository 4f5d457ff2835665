//! `warren ctl`: operating a running Warren through its management API.

pub mod client;
