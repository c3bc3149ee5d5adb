//! `spool-bridge`: forwards a Spool stream to a JetStream subject (`out`) or
//! a JetStream subject into a Spool stream (`in`), until SIGINT/SIGTERM.
//!
//! ```text
//! spool-bridge --store DIR out --stream orders --subject spool.orders
//! spool-bridge --store DIR in --subject 'jobs.>' --stream jobs
//! ```

use clap::{Parser, Subcommand};
use spool::{Options, Store};
use spool_bridge::{inbound, outbound, setup, BridgeError};
use std::path::PathBuf;
use std::process::ExitCode;

/// A crash-safe bridge between Spool streams and NATS JetStream.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The Spool store's directory (created if missing).
    #[arg(long)]
    store: PathBuf,
    /// The NATS server.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// The JetStream request and publish-ack timeout (100ms..=10m, e.g.
    /// `1s`): how soon a request to a dead leader fails and the bridge
    /// retries with the next one.
    #[arg(long, default_value = "5s")]
    request_timeout: String,
    /// If no JetStream stream captures the subject, create one of this
    /// name (file storage, the subject its only subject, no limits). A
    /// stream of that name capturing other subjects is an error.
    #[arg(long, value_name = "NAME")]
    create_stream: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Spool → JetStream: publish the stream's messages on the subject,
    /// each exactly once.
    Out {
        /// The Spool stream read.
        #[arg(long)]
        stream: String,
        /// The subject written (a JetStream stream must capture it).
        #[arg(long)]
        subject: String,
        /// The durable Spool consumer's name.
        #[arg(long, default_value = "bridge-out")]
        consumer: String,
        /// Names this store in message ids and the origin header.
        #[arg(long, default_value = "spool")]
        origin: String,
        /// Most publishes in flight.
        #[arg(long, default_value_t = 256)]
        window: usize,
        /// A Spool stream where messages NATS cannot carry (above the
        /// server's max_payload) are set aside; without one such a message
        /// stops the bridge.
        #[arg(long, value_name = "STREAM")]
        dead_letter: Option<String>,
    },
    /// JetStream → Spool: append the subject's messages to the stream,
    /// each exactly once.
    In {
        /// The subject read (wildcards allowed; a JetStream stream must
        /// capture it).
        #[arg(long)]
        subject: String,
        /// The Spool stream written.
        #[arg(long)]
        stream: String,
        /// The durable JetStream consumer's name.
        #[arg(long, default_value = "spool-bridge-in")]
        durable: String,
        /// Most messages fetched at once.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// The JetStream consumer's ack wait (1s..=24h, e.g. `30s`).
        #[arg(long, default_value = "60s")]
        ack_wait: String,
    },
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn run(cli: Cli) -> Result<u64, Box<dyn std::error::Error>> {
    let (min, max) = spool_bridge::REQUEST_TIMEOUT;
    let timeout =
        spool_bridge::duration_setting("--request-timeout", &cli.request_timeout, min, max)?;
    let ack_wait = match &cli.command {
        Command::In { ack_wait, .. } => {
            let (min, max) = inbound::ACK_WAIT;
            Some(spool_bridge::duration_setting(
                "--ack-wait",
                ack_wait,
                min,
                max,
            )?)
        }
        Command::Out { .. } => None,
    };
    let store = Store::open(&cli.store, Options::default())?;
    // NATS away at start is an outage like any other: keep trying.
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(&cli.nats)
        .await?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(timeout)
        .ack_timeout(timeout)
        .build(client);
    if let Some(name) = &cli.create_stream {
        let subject = match &cli.command {
            Command::Out { subject, .. } | Command::In { subject, .. } => subject,
        };
        ensure_stream(&js, name, subject).await?;
    }
    // A testing seam: SPOOL_BRIDGE_FAULT=point:nth aborts the process the
    // nth time the protocol reaches point (see spool_bridge::fault).
    let fault = match std::env::var("SPOOL_BRIDGE_FAULT") {
        Ok(s) => std::sync::Arc::new(spool_bridge::fault::Fault::parse(&s)?),
        Err(_) => Default::default(),
    };
    let n = match cli.command {
        Command::Out {
            stream,
            subject,
            consumer,
            origin,
            window,
            dead_letter,
        } => {
            let config = outbound::OutboundConfig {
                consumer,
                origin,
                window,
                dead_letter,
                fault,
                ..outbound::OutboundConfig::new(&stream, &subject)
            };
            outbound::run(&store, &js, &config, shutdown_signal()).await?
        }
        Command::In {
            subject,
            stream,
            durable,
            batch,
            ack_wait: _,
        } => {
            let config = inbound::InboundConfig {
                durable,
                batch,
                ack_wait: ack_wait.unwrap_or(inbound::InboundConfig::new("", "").ack_wait),
                fault,
                ..inbound::InboundConfig::new(&subject, &stream)
            };
            inbound::run(&store, &js, &config, shutdown_signal()).await?
        }
    };
    store.close()?;
    Ok(n)
}

/// [`setup::ensure_stream`], retried while JetStream does not answer (it
/// may still be starting); a refusal ([`BridgeError::Setup`]) is final.
async fn ensure_stream(
    js: &async_nats::jetstream::Context,
    name: &str,
    subject: &str,
) -> Result<(), BridgeError> {
    let mut told = false;
    loop {
        match setup::ensure_stream(js, name, subject).await {
            Ok(setup::Ensured::Created(s)) => {
                eprintln!("spool-bridge: created JetStream stream {s} for {subject}");
                return Ok(());
            }
            Ok(setup::Ensured::Found(_)) => return Ok(()),
            Err(e @ BridgeError::Setup { .. }) => return Err(e),
            Err(e) => {
                if !told {
                    eprintln!("spool-bridge: JetStream not ready ({e}); retrying");
                    told = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("spool-bridge: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(n) => {
            eprintln!("spool-bridge: stopped after {n} messages");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spool-bridge: {e}");
            ExitCode::FAILURE
        }
    }
}
