//! Reports: one data model ([`model::Summary`]) and one writer per format.

pub mod model;
