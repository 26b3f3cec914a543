//! The built-in projections (see PRODUCT.md, "Built-in projections").
//! Their payload schemas are documented in `docs/PROJECTIONS.md`.

pub mod incidents;
pub mod subjects;
pub mod tasks;
