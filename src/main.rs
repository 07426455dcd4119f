//! The `kubeactor` command line.
//!
//! `kubeactor up` loads the configuration (defaults, `--config FILE`, `KUBEACTOR__*`
//! environment variables, flags), starts logging, and runs the daemon until SIGINT/SIGTERM.
//! A configuration problem is one line on stderr and exit status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use kubeactor::config::{Config, ConfigError, ConfigSources, Override};

/// Exit status for a configuration error (the same as clap's for a usage error).
const EXIT_CONFIG: u8 = 2;
/// Exit status when the daemon fails after starting.
const EXIT_RUNTIME: u8 = 1;

/// The Kubernetes control plane's chain of events, made runnable: every component an actix
/// actor, every hop an OpenTelemetry span.
#[derive(Debug, Parser)]
#[command(name = "kubeactor", version, about, long_about = None)]
struct Cli {
    /// A TOML file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Override any configuration key; repeatable. Highest precedence, after --config and
    /// KUBEACTOR__SECTION__KEY environment variables.
    #[arg(long = "set", global = true, value_name = "SECTION.KEY=VALUE")]
    set: Vec<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (API server, store, telemetry) until SIGINT or SIGTERM.
    Up(UpArgs),
    /// `kubeactor up --demo`: run the daemon with the demo scenario loop (`[demo]`).
    Demo(UpArgs),
    /// Print the kubeconfig that `kubeactor up` wrote into the data directory.
    Kubeconfig(KubeconfigArgs),
    /// Show the most recent trace touching an object as a waterfall, from the running
    /// daemon's span store (no Jaeger needed); `--list` lists recent traces.
    Trace(TraceArgs),
    /// Fault injection on a running daemon's nodes: stop or start a node's kubelet.
    #[command(subcommand)]
    Node(NodeCommand),
}

/// `kubeactor node stop|start NAME`.
#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Stop the node's kubelet as if the node crashed or was cut off: no more Lease renewals
    /// or status; after node_monitor_grace_period it becomes NotReady and its pods are evicted.
    Stop(NodeArgs),
    /// Start the node's kubelet again: it re-registers, renews its Lease and reconciles its pods.
    Start(NodeArgs),
}

#[derive(Debug, Args)]
struct NodeArgs {
    /// The node, e.g. node-2.
    name: String,
    /// The running daemon's data directory (config key `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

impl NodeCommand {
    fn args(&self) -> &NodeArgs {
        match self {
            NodeCommand::Stop(a) | NodeCommand::Start(a) => a,
        }
    }
    fn action(&self) -> &'static str {
        match self {
            NodeCommand::Stop(_) => "stop",
            NodeCommand::Start(_) => "start",
        }
    }
}

/// `kubeactor node stop|start NAME`: `POST /kubeactor/v1/nodes/NAME/stop|start` on the daemon
/// whose kubeconfig is in the data directory; prints `node/NAME stopped|running`.
fn node_command(config: &Config, cmd: &NodeCommand) -> ExitCode {
    use kubeactor::apiserver::http::admin::NodeActionReply;
    let name = &cmd.args().name;
    let result = kubeactor::client::Client::from_data_dir(&config.data_dir())
        .and_then(|c| c.post(&format!("/kubeactor/v1/nodes/{name}/{}", cmd.action())));
    match result {
        Ok(body) => {
            match serde_json::from_slice::<NodeActionReply>(&body) {
                Ok(r) => println!("node/{} {}", r.node, r.state),
                Err(_) => println!("{}", String::from_utf8_lossy(&body)),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

// --- kubeactor trace ---
#[derive(Debug, Args)]
struct TraceArgs {
    /// The object, kubectl-style: deployment/web, deploy/web, rs/web-5d4f…, pod/web-…,
    /// node/node-1.
    #[arg(value_name = "KIND/NAME", required_unless_present_any = ["list", "id"])]
    object: Option<String>,

    /// The object's namespace (ignored for nodes).
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,

    /// List recent traces (root span, span count, duration) instead.
    #[arg(long, conflicts_with_all = ["object", "id"])]
    list: bool,

    /// Show the trace with this id (32 hex digits, as `--list` prints) instead.
    #[arg(long, value_name = "TRACE_ID", conflicts_with = "object")]
    id: Option<String>,

    /// The running daemon's data directory (config key `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// `kubeactor trace`: ask the daemon, draw the answer. Errors are one line on stderr, exit 1.
fn trace_command(config: &Config, args: &TraceArgs) -> ExitCode {
    use kubeactor::client::{Client, ClientError};
    use kubeactor::telemetry::waterfall::{self, ObjectRef, RenderOptions};
    use std::io::IsTerminal as _;
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_RUNTIME)
    };
    let opts = RenderOptions {
        color: std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        ..RenderOptions::default()
    };
    let client = match Client::from_data_dir(&config.data_dir()) {
        Ok(c) => c,
        Err(e) => return fail(e.to_string()),
    };
    let text = if args.list {
        client.traces().map(|l| waterfall::render_list(&l, &opts))
    } else if let Some(id) = &args.id {
        match client.trace(id) {
            Err(ClientError::Status { code: 404, .. }) => {
                return fail(format!("no trace {id} in the daemon's span store"))
            }
            r => r.map(|v| waterfall::render_trace(&v, &opts)),
        }
    } else {
        let arg = args.object.as_deref().unwrap_or_default();
        let object = match ObjectRef::parse(arg, &args.namespace) {
            Ok(o) => o,
            Err(e) => return fail(e),
        };
        match client.trace_of(&object) {
            Err(ClientError::Status { code: 404, .. }) => {
                return fail(format!(
                    "no trace touches {object} (the span store keeps recent spans only; \
                     `kubeactor trace --list` shows what it has)"
                ))
            }
            r => r.map(|v| waterfall::render_trace(&v, &opts)),
        }
    };
    match text {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(e.to_string()),
    }
}
// --- end kubeactor trace ---

#[derive(Debug, Args)]
struct KubeconfigArgs {
    /// The daemon's data directory (config key `data_dir`).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct UpArgs {
    /// Where the store and other state live (config key `data_dir`). Default:
    /// $XDG_DATA_HOME/kubeactor or ~/.local/share/kubeactor.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Storage engine: `redb` (durable) or `memory` (config key `store.engine`).
    #[arg(long, value_name = "redb|memory")]
    store_engine: Option<String>,

    /// Where the HTTP API listens, host:port; port 0 picks a free one (config key
    /// `apiserver.listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// Also run the demo scenario loop (config key `demo.enabled`; see `[demo]`).
    #[arg(long)]
    demo: bool,
}

/// mimalloc instead of glibc's malloc: the API server allocates and frees many small objects
/// on one thread while other threads do the same, where glibc's per-thread arenas grow with
/// `mprotect` calls that showed up as the largest cost in the store benchmark
/// (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Command::Kubeconfig(_) = cli.command {
        let path = config
            .data_dir()
            .join(kubeactor::apiserver::http::auth::KUBECONFIG_FILE);
        return match std::fs::read_to_string(&path) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "error: cannot read {}: {e} (has `kubeactor up` run with this data directory?)",
                    path.display()
                );
                ExitCode::from(EXIT_RUNTIME)
            }
        };
    }
    // --- kubeactor trace ---
    if let Command::Trace(args) = &cli.command {
        return trace_command(&config, args);
    }
    // --- end kubeactor trace ---
    if let Command::Node(cmd) = &cli.command {
        return node_command(&config, cmd);
    }
    init_logging(&config);
    match cli.command {
        Command::Up(_) | Command::Demo(_) => {
            tracing::info!(
                data_dir = %config.data_dir().display(),
                store_engine = ?config.store.engine,
                config_file = ?cli.config,
                "starting kubeactor"
            );
            match kubeactor::cluster::up(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_RUNTIME)
                }
            }
        }
        Command::Kubeconfig(_) | Command::Trace(_) | Command::Node(_) => ExitCode::SUCCESS,
    }
}

/// Builds the layers from the command line and the process environment, and loads them.
/// Flags apply in this order (a later one wins): every `--set`, then the dedicated flags.
fn load_config(cli: &Cli) -> Result<Config, ConfigError> {
    let mut overrides = cli
        .set
        .iter()
        .map(|arg| Override::parse_set(arg))
        .collect::<Result<Vec<_>, _>>()?;
    match &cli.command {
        Command::Up(args) | Command::Demo(args) => {
            if args.demo || matches!(cli.command, Command::Demo(_)) {
                overrides.push(Override::flag("--demo", "demo.enabled", "true"));
            }
            if let Some(dir) = &args.data_dir {
                let dir = dir.to_string_lossy();
                overrides.push(Override::flag("--data-dir", "data_dir", dir));
            }
            if let Some(engine) = &args.store_engine {
                overrides.push(Override::flag("--store-engine", "store.engine", engine));
            }
            if let Some(listen) = &args.listen {
                overrides.push(Override::flag("--listen", "apiserver.listen", listen));
            }
        }
        Command::Kubeconfig(args) => {
            if let Some(dir) = &args.data_dir {
                let dir = dir.to_string_lossy();
                overrides.push(Override::flag("--data-dir", "data_dir", dir));
            }
        }
        // --- kubeactor trace ---
        Command::Trace(args) => {
            if let Some(dir) = &args.data_dir {
                let dir = dir.to_string_lossy();
                overrides.push(Override::flag("--data-dir", "data_dir", dir));
            }
        } // --- end kubeactor trace ---
        Command::Node(cmd) => {
            if let Some(dir) = &cmd.args().data_dir {
                let dir = dir.to_string_lossy();
                overrides.push(Override::flag("--data-dir", "data_dir", dir));
            }
        }
    }
    let sources = ConfigSources {
        file: cli.config.clone(),
        overrides,
        ..Default::default()
    }
    .with_process_env();
    Config::load(&sources)
}

/// Logs go to stderr. `RUST_LOG` wins over `log.filter`; an invalid `RUST_LOG` is reported
/// and ignored rather than fatal (it is not kubeactor's configuration).
fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let from_config = || EnvFilter::new(&config.log.filter);
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            EnvFilter::builder().parse(&directives).unwrap_or_else(|e| {
                eprintln!(
                    "warning: ignoring RUST_LOG ({e}); using log.filter {:?}",
                    config.log.filter
                );
                from_config()
            })
        }
        _ => from_config(),
    };
    // `try_init` fails only if a subscriber is already set, which cannot happen here.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
