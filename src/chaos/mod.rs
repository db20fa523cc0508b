//! The simulator's hooks into a node: an observer of what each node applies, buggify points
//! that perturb storage, transport and apply, and planted bugs that prove the simulator
//! catches them. Outside the simulator build (`--cfg madsim`) the observer and buggify compile
//! to nothing; planted bugs exist only with the `mutants` feature, which production never
//! enables.

pub mod buggify;
pub mod mutant;
pub mod observe;
