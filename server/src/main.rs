//! The `zkr-server` binary.
fn main() {}
