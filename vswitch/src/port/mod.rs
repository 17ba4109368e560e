//! Port kinds behind one batch rx/tx interface.

pub mod tap;
