pub mod chain;
pub mod controller;
pub mod generate;
pub mod leader;
pub mod metrics;
pub mod operator;
pub mod render;
pub mod rpc;
