//! Code shared by the example programs of `src/bin`.
#![warn(missing_docs)]

pub mod cross;
