pub mod chain;
pub mod generate;
