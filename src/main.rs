//! The `jobq` binary: the command line (src/cli.rs), configuration from the environment,
//! plain-text logs, signal handling. Everything else is in the library.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    run(std::env::args().skip(1))
}

fn run(args: impl Iterator<Item = String>) -> ExitCode {
    match cli::parse(args) {
        Ok(cli::Command::Serve) => serve(),
        Ok(cli::Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Version) => {
            println!("jobq {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(cli::Command::Health) => cli::health(),
        Ok(cli::Command::CheckConfig) => cli::check_config(),
        Err(e) => {
            eprint!("jobq: {e}\n\n{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
}

fn serve() -> ExitCode {
    let config = match jobq::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprint!("jobq: {e}");
            eprintln!(
                "See the \"Configuration\" section of README.md, or run `jobq check-config`."
            );
            return ExitCode::from(2);
        }
    };
    let log_config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .set_location_level(log::LevelFilter::Off)
        .build();
    let _ = simplelog::WriteLogger::init(config.log_level, log_config, std::io::stderr());
    log::info!(
        "starting jobq {}: {}",
        env!("CARGO_PKG_VERSION"),
        config.summary()
    );

    let registry = match jobq::builtin_registry(&config) {
        Ok(r) => r,
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    let running = match jobq::start(config, registry) {
        Ok(r) => r,
        // A setting found wrong only once the job types are known (SCHEDULES_FILE's jobs).
        Err(e @ jobq::Error::Config(_)) => {
            log::error!("cannot start: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            log::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let stop = running.shutdown_handle();
    let installed = ctrlc::set_handler(move || {
        if stop.trigger() {
            log::info!("signal received: draining (a second signal exits at once)");
        } else {
            log::warn!("second signal: exiting without waiting for running jobs");
            std::process::exit(130);
        }
    });
    if let Err(e) = installed {
        log::error!("cannot install the signal handler: {e}");
        let _ = running.shutdown();
        return ExitCode::FAILURE;
    }
    match running.wait() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
