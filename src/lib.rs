pub mod chain;
pub mod controller;
pub mod generate;
pub mod operator;
pub mod render;
pub mod rpc;
