//! Self-test of the testing kit's server and fixtures (`dynamite::testing::{LocalDynamoDb,
//! TestDb}`); the fault proxy has its own, `fault_proxy_selftest.rs`.
//!
//! The `LocalDynamoDb` tests start DynamoDB Local and moto themselves, whatever the environment
//! names, and are skipped (saying so on stderr) when that server is not installed. They run one
//! at a time: a JVM per test on a small machine is slow enough.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dynamite::testing::{LocalDynamoDb, ServerKind, SetupError, TestDb};
use dynamite::Entity;
use serde::{Deserialize, Serialize};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "things")]
struct Thing {
    #[dynamite(partition_key)]
    id: String,
    n: i64,
}

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "others")]
struct Other {
    #[dynamite(partition_key)]
    id: String,
}

/// One server-starting test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Set in the environment of the child process of `a_started_server_dies_with_its_process`.
const CHILD_VAR: &str = "DYNAMITE_TESTING_SELFTEST_CHILD";
const CHILD_TEST: &str = "child_process_helper";

/// A server of `kind` started here, or `None` (after saying so) when it is not installed.
async fn start(kind: ServerKind) -> Option<LocalDynamoDb> {
    match LocalDynamoDb::builder().server(kind).start().await {
        Ok(server) => Some(server),
        Err(err @ SetupError::NoServer { .. }) => {
            eprintln!("skipped: {kind} is not installed: {err}");
            None
        }
        Err(err) => panic!("{kind}: {err}"),
    }
}

fn authority(endpoint: &str) -> SocketAddr {
    endpoint
        .strip_prefix("http://")
        .expect("an http endpoint")
        .parse()
        .expect("host:port")
}

/// This machine's address on its default route, when it has one that is not loopback.
fn non_loopback_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?; // UDP: nothing is sent
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

/// Waits up to 30 s for `addr` to stop accepting connections.
async fn assert_closes(addr: SocketAddr, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while accepts(addr) {
        assert!(Instant::now() < deadline, "{what}: {addr} still accepts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A round trip through a `TestDb` on `endpoint`: create, put, get, clean up.
async fn assert_serves(endpoint: &str) {
    let db = TestDb::with_endpoint(endpoint).await;
    db.create_table::<Thing>().await.unwrap();
    let thing = Thing {
        id: "a".into(),
        n: 1,
    };
    thing.put(db.client()).await.unwrap();
    let got = Thing::get(db.client(), Thing::key("a"))
        .consistent()
        .await
        .unwrap();
    assert_eq!(got, Some(thing));
    db.cleanup().await.unwrap();
}

async fn binds_loopback_serves_and_stops_on_drop(kind: ServerKind) {
    let _serial = SERIAL.lock().await;
    let Some(server) = start(kind).await else {
        return;
    };
    assert_eq!(server.kind(), kind);
    assert!(
        server.endpoint().starts_with("http://127.0.0.1:"),
        "{server:?}"
    );
    assert_serves(server.endpoint()).await;

    let addr = authority(server.endpoint());
    if let Some(ip) = non_loopback_ip() {
        assert!(
            !accepts(SocketAddr::new(ip, addr.port())),
            "{kind} must listen on 127.0.0.1 only, but accepts on {ip}"
        );
    }
    assert!(accepts(addr));
    drop(server);
    assert!(!accepts(addr), "{kind} still accepts after the drop");
}

#[tokio::test]
async fn dynamodb_local_binds_loopback_serves_and_stops_on_drop() {
    binds_loopback_serves_and_stops_on_drop(ServerKind::DynamoDbLocal).await;
}

#[tokio::test]
async fn moto_binds_loopback_serves_and_stops_on_drop() {
    binds_loopback_serves_and_stops_on_drop(ServerKind::Moto).await;
}

/// Kills `child` when dropped, so a failing assertion leaves no process behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In the child process (and only there): starts a server, prints its endpoint, and waits to
/// be killed. Elsewhere it passes at once.
#[tokio::test]
async fn child_process_helper() {
    let Ok(kind) = std::env::var(CHILD_VAR) else {
        return;
    };
    let kind = match kind.as_str() {
        "moto" => ServerKind::Moto,
        _ => ServerKind::DynamoDbLocal,
    };
    match LocalDynamoDb::builder().server(kind).start().await {
        Ok(server) => {
            println!("ENDPOINT={}", server.endpoint());
            tokio::time::sleep(Duration::from_secs(300)).await;
        }
        Err(err) => println!("NOSERVER={err}"),
    }
}

/// A server started by a process that is then killed (no destructor runs) exits by itself.
async fn a_started_server_dies_with_its_process(kind: &str) {
    let _serial = SERIAL.lock().await;
    let mut child = KillOnDrop(
        Command::new(std::env::current_exe().unwrap())
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_VAR, kind)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let found = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest may print "test child_process_helper ... " on the same line first.
            .find_map(|line| {
                let start = line.find("ENDPOINT=").or_else(|| line.find("NOSERVER="))?;
                Some(line[start..].to_owned())
            })
    });
    let line = tokio::time::timeout(Duration::from_secs(180), found)
        .await
        .expect("the child starts its server in time")
        .unwrap()
        .expect("the child prints its endpoint");
    let Some(endpoint) = line.strip_prefix("ENDPOINT=") else {
        eprintln!("skipped: {line}");
        return;
    };
    let addr = authority(endpoint);
    assert!(accepts(addr));

    child.0.kill().unwrap(); // SIGKILL on Unix: nothing in the child gets to clean up
    child.0.wait().unwrap();
    assert_closes(addr, &format!("{kind} after its parent was killed")).await;
}

#[tokio::test]
async fn dynamodb_local_dies_with_its_process() {
    a_started_server_dies_with_its_process("dynamodb-local").await;
}

#[tokio::test]
async fn moto_dies_with_its_process() {
    a_started_server_dies_with_its_process("moto").await;
}

#[tokio::test]
async fn paths_that_are_not_files_are_configuration_errors() {
    let err = LocalDynamoDb::builder()
        .server(ServerKind::DynamoDbLocal)
        .dynamodb_local_jar("/nonexistent/DynamoDBLocal.jar")
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/DynamoDBLocal.jar"),
        "{err}"
    );

    let err = LocalDynamoDb::builder()
        .server(ServerKind::Moto)
        .moto_server("/nonexistent/moto_server")
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::Config(_)), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/moto_server"),
        "{err}"
    );
}

/// A server that exits while starting is reported with its output.
#[cfg(unix)]
#[tokio::test]
async fn a_server_that_exits_while_starting_is_reported_with_its_output() {
    use std::os::unix::fs::PermissionsExt;

    let dir = std::env::temp_dir().join(format!("dynamite-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A "Python" that fails the way a Python without moto would.
    let python = dir.join("python-without-moto");
    std::fs::write(
        &python,
        "#!/bin/sh\necho \"ModuleNotFoundError: No module named 'moto'\" >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.join("moto_server");
    std::fs::write(&script, format!("#!{}\n", python.display())).unwrap();

    let err = LocalDynamoDb::builder()
        .server(ServerKind::Moto)
        .moto_server(&script)
        .start()
        .await
        .unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    match &err {
        SetupError::Start {
            server,
            reason,
            output,
            ..
        } => {
            assert_eq!(*server, ServerKind::Moto);
            assert!(reason.contains("exited while starting"), "{reason}");
            assert!(output.contains("No module named 'moto'"), "{output}");
        }
        other => panic!("expected a start error, got {other}"),
    }
    assert!(
        err.to_string().contains("--- last output of moto ---"),
        "{err}"
    );
}

#[tokio::test]
async fn the_shared_server_is_started_once() {
    let first = LocalDynamoDb::shared().await.unwrap();
    let second = LocalDynamoDb::shared().await.unwrap();
    assert!(std::ptr::eq(first, second));
    let from_env = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .ok();
    match from_env {
        Some(endpoint) => {
            assert_eq!(first.kind(), ServerKind::Endpoint);
            assert_eq!(first.endpoint(), endpoint);
        }
        None => assert_ne!(first.kind(), ServerKind::Endpoint),
    }
}

/// Every table name on the server.
async fn all_tables(db: &TestDb) -> Vec<String> {
    db.client()
        .sdk()
        .list_tables()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test]
async fn cleanup_deletes_exactly_the_tables_of_its_test_db() {
    let a = TestDb::new().await.unwrap();
    let b = TestDb::new().await.unwrap();
    assert_ne!(a.table_prefix(), b.table_prefix());
    a.create_table::<Thing>()
        .await
        .unwrap()
        .create_table::<Other>()
        .await
        .unwrap();
    b.create_table::<Thing>().await.unwrap();
    let a_tables = vec![
        format!("{}things", a.table_prefix()),
        format!("{}others", a.table_prefix()),
    ];
    let b_tables = vec![format!("{}things", b.table_prefix())];
    assert_eq!(a.tables(), a_tables);
    assert_eq!(b.tables(), b_tables);

    let before = all_tables(&b).await;
    assert!(a_tables.iter().chain(&b_tables).all(|t| before.contains(t)));

    a.cleanup().await.unwrap();
    let after = all_tables(&b).await;
    assert!(a_tables.iter().all(|t| !after.contains(t)), "{after:?}");
    assert!(b_tables.iter().all(|t| after.contains(t)), "{after:?}");
    b.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_test_db_dropped_without_cleanup_deletes_its_tables() {
    let observer = TestDb::new().await.unwrap();
    let db = TestDb::new().await.unwrap();
    db.create_table::<Thing>().await.unwrap();
    let table = format!("{}things", db.table_prefix());
    assert!(all_tables(&observer).await.contains(&table));

    drop(db);
    assert!(!all_tables(&observer).await.contains(&table));
}

#[tokio::test]
async fn clients_share_the_prefix_and_go_where_they_are_told() {
    let db = TestDb::new().await.unwrap();
    db.create_table::<Thing>().await.unwrap();
    let proxy = db.fault_proxy().await;
    let through = db.client_through(&proxy);
    let other = db.client_builder().build();
    assert_eq!(through.table_prefix(), db.table_prefix());
    assert_eq!(other.table_prefix(), db.table_prefix());

    let thing = Thing {
        id: "x".into(),
        n: 7,
    };
    thing.put(&through).await.unwrap();
    assert_eq!(proxy.count("PutItem"), 1);
    let got = Thing::get(&other, Thing::key("x"))
        .consistent()
        .await
        .unwrap();
    assert_eq!(got, Some(thing));
    assert_eq!(
        proxy.count("GetItem"),
        0,
        "the other client goes straight to the server"
    );
    db.cleanup().await.unwrap();
}
