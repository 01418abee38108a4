//! The workspace's `plenum` binary: the operator command over the HVAC record types. A service
//! builds its own in the same three lines with its record types and tables.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    plenum_cli::run(
        std::env::args_os(),
        plenum_cli::Services {
            record_types: plenum_hvac::record_types(),
            tables: plenum_hvac::tables(),
        },
    )
}
