pub mod chain;
pub mod generate;
pub mod controller;
pub mod operator;
pub mod render;
