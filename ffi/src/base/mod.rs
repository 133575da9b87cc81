//! The base layer every export family imports, and that imports none of
//! them: status codes ([`status`]), the owned error object ([`error`]), the
//! panic guard and the call boundary with its argument checks. Inside it,
//! `guard` ← `status` ← `error` ← `boundary`.

// In header order (cbindgen follows declaration order).
pub mod status;

pub mod error;

mod boundary;

mod guard;

pub(crate) use boundary::{
    boundary, obj, obj_mut, opt_obj, opt_str_in, slice_in, str_in, usize_from_u64, Out, OutSlice,
};
pub use error::ordq_error;
pub(crate) use error::{Failure, FfiResult};
pub(crate) use guard::boundary_value;
pub use status::ordq_status;
