//! The `dorametrics` binary: the command line of the library beside it.
#![forbid(unsafe_code)]

fn main() -> anyhow::Result<()> {
    dorametrics::run(std::env::args_os())
}
