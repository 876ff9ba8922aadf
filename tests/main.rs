//! End-to-end tests: one test binary (so heavy dependencies are linked once), one module per
//! area, all sharing `kit`.
mod kit;
mod sim;
