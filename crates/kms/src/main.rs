//! The `kms` binary: configuration, wiring, start and graceful shutdown, and the command
//! line client.

use clap::FromArgMatches;

/// mimalloc: the request path allocates many small short-lived buffers on two threads;
/// glibc malloc spent over a quarter of the CPU on them (perf, docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
/// mimalloc's `purge_delay` option (its index in `mi_option_t`, mimalloc v2's `mimalloc.h`:
/// the Rust bindings name only some options).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed memory goes back to the system at once rather than 10 ms later: under sustained load
/// the nonce cache's merges free sets of a few MB at a time, and with the delay resident
/// memory stayed about 15 MB higher over 10 minutes of Encrypt (`scripts/bench-rss.sh`,
/// `MIMALLOC_PURGE_DELAY=0`; docs/performance-notes.md), for no measurable CPU.
fn purge_freed_memory_at_once() {
    // SAFETY: sets a plain integer option of the allocator; no memory is passed.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
}
use kms::cli::{self, Failure};
use kms::config::{AdminCommand, Cli, Command};

/// Colour in the logs only for a person at a terminal: not when stderr is a file or a pipe,
/// nor when `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

fn main() -> std::process::ExitCode {
    purge_freed_memory_at_once();
    let matches = cli::command().get_matches();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
    let json = matches
        .subcommand_matches("server")
        .and_then(|m| m.get_one::<kms::config::LogFormat>("log_format"))
        == Some(&kms::config::LogFormat::Json);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        // One JSON object per line (fields flattened beside "message") for log shippers.
        logs.json().flatten_event(true).init();
    } else {
        logs.with_ansi(colour_logs()).init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result: Result<(), Failure> = runtime.block_on(async {
        if let Some((name, sub)) = matches.subcommand() {
            if let Some(action) = kms::action::kms::Action::from_name(name) {
                return cli::run_action(action, sub).await;
            }
        }
        let cli = Cli::from_arg_matches(&matches).map_err(|e| Failure::usage(e.to_string()))?;
        match cli.command {
            Command::Server(args) => {
                let config = args.resolve()?;
                // Signal handlers first, so a SIGTERM as soon as the port answers is graceful.
                let shutdown = kms::server::shutdown_signal();
                let listener = tokio::net::TcpListener::bind(&config.listen)
                    .await
                    .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
                Ok(kms::server::run(listener, config, shutdown).await?)
            }
            Command::Bench(args) => Ok(kms::bench::run(args).await?),
            Command::Admin(admin) => match admin.command {
                AdminCommand::AccessKey(cmd) => Ok(kms::admin::access_key(cmd).await?),
                AdminCommand::Audit(cmd) => Ok(kms::admin::audit(cmd).await?),
                AdminCommand::MigrateStore { from, to } => {
                    Ok(kms::admin::migrate_store(&from, &to).await?)
                }
                AdminCommand::ConsoleUser(cmd) => Ok(kms::admin::console_user(cmd).await?),
                AdminCommand::Identities { dir, account_id } => {
                    Ok(kms::admin::identities(dir, account_id).await?)
                }
                AdminCommand::ActionTable => {
                    kms::admin::action_table();
                    Ok(())
                }
                AdminCommand::RotateRootKey {
                    dir,
                    audit_dir,
                    batch,
                    grace_seconds,
                } => Ok(kms::rotation::rotate(kms::rotation::Options {
                    data_dir: dir.data_dir,
                    database_url: dir.database_url,
                    audit_dir,
                    batch,
                    grace: std::time::Duration::from_secs_f64(if grace_seconds.is_finite() {
                        grace_seconds.clamp(0.0, 3600.0)
                    } else {
                        3.0
                    }),
                })
                .await?),
                AdminCommand::Backup { dir, to } => Ok(kms::admin::backup(&dir, &to).await?),
                AdminCommand::Restore {
                    from,
                    data_dir,
                    database_url,
                } => Ok(kms::admin::restore(&from, &data_dir, database_url.as_deref()).await?),
                AdminCommand::HsmRoot(cmd) => Ok(kms::admin::hsm_root(cmd).await?),
                AdminCommand::SeedKeys {
                    dir,
                    count,
                    account_id,
                    region,
                } => Ok(kms::admin::seed_keys(&dir, count, account_id, region).await?),
            },
            Command::Configure(a) => cli::configure(a),
            Command::Wrap(a) => cli::wrap(a),
            Command::ImportMaterial(a) => cli::import_material(a).await,
            Command::CreateExternalKey(a) => cli::create_external_key(a).await,
            Command::Sign(a) => cli::asymmetric::sign(a).await,
            Command::Verify(a) => cli::asymmetric::verify(a).await,
            Command::Completion { shell } => {
                cli::completion(shell);
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(f) => {
            if f.status == 1 {
                eprintln!("{}", f.message);
            } else {
                eprintln!("error: {}", f.message);
            }
            std::process::ExitCode::from(f.status)
        }
    }
}
