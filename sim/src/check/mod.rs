//! One checker per invariant, each reading only a `History`.
