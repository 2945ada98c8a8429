//! The command line: one module per command, each with its clap args (composed from the small
//! structs in `args`), turning them into an operation's typed inputs, calling it, and rendering
//! the result. `app` is the top: the parser and the dispatch.

pub mod app;
pub mod args;
pub mod audit;
pub mod bluegreen;
pub mod canary;
pub mod completion;
pub mod context;
pub mod export;
pub mod history;
pub mod pause;
pub mod plan;
pub mod status;
pub mod undo;
pub mod update;
