//! Metrics to Prometheus: install `metrics-exporter-prometheus`'s recorder, serve its scrape at
//! `/metrics` on loopback, make a few requests through an in-process cache (some answered by
//! it, one failing), then scrape the endpoint over HTTP like Prometheus would and print the
//! dynamite series; last, the same figures as `Client::stats()` keeps them in process.
//!
//! Run against the local server:
//! `scripts/with-services -- cargo run --features metrics --example metrics`.

use dynamite::cache::MokaLayer;
use dynamite::{Client, Entity};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Entity, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[dynamite(table = "metrics-example-counters")]
pub struct Counter {
    #[dynamite(partition_key)]
    pub id: String,
    pub hits: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The recorder, and an endpoint serving its scrape.
    let handle = PrometheusBuilder::new().install_recorder()?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let body = handle.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
        }
    });

    // Some requests.
    let sdk = Client::from_env().await.sdk().clone();
    let db = Client::builder(sdk).cache(MokaLayer::new(1 << 20)).build();
    Counter::create_table(&db).await?;
    for i in 0..5 {
        Counter {
            id: format!("c{i}"),
            hits: i,
        }
        .put(&db)
        .await?;
        // The first get reads DynamoDB, the second is answered by the cache.
        Counter::get(&db, Counter::key(format!("c{i}"))).await?;
        Counter::get(&db, Counter::key(format!("c{i}"))).await?;
    }
    // A failed request: the table is gone (a consistent read skips the cache).
    Counter::delete_table(&db).await?;
    let failed = Counter::get(&db, Counter::key("c1")).consistent().await;
    println!("get after the table was deleted: {}", failed.unwrap_err());

    // The scrape.
    let mut stream = TcpStream::connect(endpoint).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await?;
    let mut scrape = String::new();
    stream.read_to_string(&mut scrape).await?;
    println!("\nGET http://{endpoint}/metrics (dynamite's series):\n");
    // Summaries are printed at their median and p99 only, to keep it short.
    let shown = |line: &str| {
        (line.contains("dynamite") || line.contains("db_client"))
            && (!line.contains("quantile=")
                || line.contains("quantile=\"0.5\"")
                || line.contains("quantile=\"0.99\""))
    };
    for line in scrape.lines().filter(|line| shown(line)) {
        println!("{line}");
    }

    println!("\ndb.stats():\n\n{}", db.stats());
    Ok(())
}
