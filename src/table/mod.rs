//! Tables from entity metadata: create, ensure (idempotent, checked for drift, optionally
//! migrated), delete. `drift.rs` compares a table with its entity.

mod drift;

pub use drift::SchemaDrift;

use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode as SdkBillingMode, CreateGlobalSecondaryIndexAction,
    GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection as SdkProjection, ProjectionType, ProvisionedThroughput,
    ScalarAttributeType, StreamSpecification, StreamViewType, TableDescription, TableStatus,
    TimeToLiveSpecification,
};

use crate::pipeline::Target;
use crate::value::ScalarType;
use crate::{
    Client, Entity, Error, IndexKind, IndexSchema, KeySchema, Operation, Projection, Result,
    StreamView, TableSchema,
};

/// How a table is billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BillingMode {
    /// On-demand (pay per request): the default.
    #[default]
    OnDemand,
    /// Provisioned capacity, applied to the table and to each global secondary index.
    Provisioned {
        /// Read capacity units.
        read: i64,
        /// Write capacity units.
        write: i64,
    },
}

/// Creates (or, with `ensure`, finds) the table of `E` and waits until it and its indexes are
/// ACTIVE; enables TTL when the entity has a TTL attribute. Built by [`Entity::create_table`]
/// and [`Entity::ensure_table`].
///
/// `ensure_table` checks a table that exists against the entity: its key schema, key attribute
/// types, and each declared index's kind, key and projection. A difference is
/// [`Error::SchemaDrift`], naming each one; with [`migrate`](Self::migrate), missing global
/// indexes are added instead.
#[must_use = "a CreateTable does nothing until awaited"]
pub struct CreateTable<'a, E: Entity> {
    client: &'a Client,
    billing: BillingMode,
    if_missing: bool,
    migrate: bool,
    wait_timeout: Duration,
    stream: Option<StreamView>,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> std::fmt::Debug for CreateTable<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateTable")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> CreateTable<'a, E> {
    pub(crate) fn new(client: &'a Client, if_missing: bool) -> Self {
        CreateTable {
            client,
            billing: BillingMode::default(),
            if_missing,
            migrate: false,
            wait_timeout: Duration::from_secs(300),
            stream: E::schema().stream,
            _entity: PhantomData,
        }
    }

    /// Billing mode for a table this call creates (on-demand by default).
    pub fn billing(mut self, billing: BillingMode) -> Self {
        self.billing = billing;
        self
    }

    /// For an existing table: add the global indexes the entity declares and the table lacks
    /// (one UpdateTable each, waiting until it is ACTIVE: DynamoDB backfills it from the
    /// table's items), instead of reporting them as drift. Other drift is still an error: a
    /// table's key, its local indexes and an index's key or projection cannot be changed in
    /// place.
    pub fn migrate(mut self) -> Self {
        self.migrate = true;
        self
    }

    /// Enables the table's stream with view type `view` (the entity's
    /// `#[dynamite(stream = "...")]` by default; no stream without either). `ensure_table`
    /// enables it on an existing table that has none; a stream with another view type is an
    /// [`Error::Config`] (DynamoDB cannot change it in place).
    ///
    /// ```no_run
    /// # use dynamite::Entity;
    /// # #[derive(Entity, serde::Serialize, serde::Deserialize)]
    /// # #[dynamite(table = "users")]
    /// # struct User { #[dynamite(partition_key)] id: String }
    /// # async fn demo(db: &dynamite::Client) -> dynamite::Result<()> {
    /// use dynamite::StreamView;
    ///
    /// User::ensure_table(db).stream(StreamView::KeysOnly).await?;
    /// # Ok(()) }
    /// ```
    pub fn stream(mut self, view: StreamView) -> Self {
        self.stream = Some(view);
        self
    }

    /// How long to wait for the table to become ACTIVE (5 minutes by default).
    pub fn wait_timeout(mut self, timeout: Duration) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// Runs it.
    pub async fn send(self) -> Result<()> {
        let schema = E::schema();
        let table = self.client.table_name(schema.table);
        let existing = if self.if_missing {
            describe(self.client, &table, schema.entity).await?
        } else {
            None
        };
        let exists = existing.is_some();
        if let Some(existing) = existing {
            self.check_drift(&table, &existing).await?;
            if let Some(view) = self.stream {
                wait_active(self.client, &table, schema.entity, self.wait_timeout).await?;
                let wait = self.wait_timeout;
                enable_stream(self.client, &table, schema.entity, view, &existing, wait).await?;
            }
        } else {
            let request = create_request::<E>(self.client, &table, self.billing)
                .set_stream_specification(self.stream.map(stream_specification));
            // Sent again after a lost answer, CreateTable answers ResourceInUseException, which
            // ensure_table accepts (a strict create_table then reports the table as existing).
            let target = Target::safe(Operation::CreateTable, &table, schema.entity, None);
            let created = self.client.execute(target, || request.clone().send()).await;
            match created {
                Ok(_) => {}
                // Someone else created it meanwhile: fine for ensure_table.
                Err(e) if self.if_missing && e.is_resource_in_use() => {}
                Err(e) => return Err(e),
            }
        }
        wait_active(self.client, &table, schema.entity, self.wait_timeout).await?;
        if let Some(ttl) = schema.ttl {
            if exists {
                match ttl_attribute(self.client, &table, schema.entity).await? {
                    // Already on (or turning on) for this attribute.
                    Some(current) if current == ttl => return Ok(()),
                    Some(current) => {
                        return Err(Error::Config(format!(
                            "table {table} has TTL on attribute {current:?}, but entity {} \
                             declares {ttl:?}: DynamoDB allows one TTL attribute per table, so \
                             items would not expire as declared; disable TTL on the table (it \
                             takes up to an hour) or change the entity",
                            schema.entity
                        )))
                    }
                    None => {}
                }
            }
            let target = Target::safe(Operation::UpdateTimeToLive, &table, schema.entity, None);
            let result = self
                .client
                .execute(target, || {
                    self.client
                        .sdk()
                        .update_time_to_live()
                        .table_name(&table)
                        .time_to_live_specification(
                            TimeToLiveSpecification::builder()
                                .enabled(true)
                                .attribute_name(ttl)
                                .build()
                                .expect("enabled and attribute_name are set"),
                        )
                        .send()
                })
                .await;
            result?;
        }
        Ok(())
    }
}

impl<E: Entity> CreateTable<'_, E> {
    /// Reports how `existing` differs from `E`; with `migrate`, adds its missing global
    /// indexes first.
    async fn check_drift(&self, table: &str, existing: &TableDescription) -> Result<()> {
        let schema = E::schema();
        let differences = drift::drift(schema, existing);
        if differences.is_empty() {
            return Ok(());
        }
        if !self.migrate || !differences.iter().all(SchemaDrift::is_migratable) {
            return Err(Error::SchemaDrift {
                table: table.to_owned(),
                entity: schema.entity,
                differences,
            });
        }
        // Wait for the table first: DynamoDB refuses an update while it is being created.
        wait_active(self.client, table, schema.entity, self.wait_timeout).await?;
        let throughput = self.index_throughput(existing);
        for difference in &differences {
            let SchemaDrift::MissingIndex { index, .. } = difference else {
                continue;
            };
            let index = schema
                .indexes
                .iter()
                .find(|i| i.name == index)
                .expect("drift names declared indexes");
            add_global_index(self.client, table, schema, index, throughput.clone()).await?;
            wait_active(self.client, table, schema.entity, self.wait_timeout).await?;
        }
        Ok(())
    }

    /// The capacity of an index added to `existing`: the builder's when provisioned, else the
    /// table's own when it is provisioned, else none (on demand).
    fn index_throughput(&self, existing: &TableDescription) -> Option<ProvisionedThroughput> {
        if let BillingMode::Provisioned { read, write } = self.billing {
            return Some(throughput(read, write));
        }
        let on_demand = existing
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .is_some_and(|m| *m == SdkBillingMode::PayPerRequest);
        let table = existing.provisioned_throughput()?;
        let (read, write) = (table.read_capacity_units()?, table.write_capacity_units()?);
        (!on_demand && read > 0 && write > 0).then(|| throughput(read, write))
    }
}

fn throughput(read: i64, write: i64) -> ProvisionedThroughput {
    ProvisionedThroughput::builder()
        .read_capacity_units(read)
        .write_capacity_units(write)
        .build()
        .expect("capacities are set")
}

fn stream_specification(view: StreamView) -> StreamSpecification {
    StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::from(view.name()))
        .build()
        .expect("stream_enabled is set")
}

/// Enables the stream `view` on the existing table `table` unless it has it already; a stream
/// of another view type is an error.
async fn enable_stream(
    client: &Client,
    table: &str,
    entity: &'static str,
    view: StreamView,
    existing: &TableDescription,
    wait: Duration,
) -> Result<()> {
    let current = existing
        .stream_specification()
        .filter(|s| s.stream_enabled())
        .and_then(|s| s.stream_view_type());
    match current {
        Some(current) if current.as_str() == view.name() => return Ok(()),
        Some(current) => {
            return Err(Error::Config(format!(
                "table {table} has a stream of view type {current}, but {} is asked for: \
                 DynamoDB cannot change a stream's view type; disable the stream and enable \
                 it again (its records are lost), or ask for {current}",
                view.name()
            )))
        }
        None => {}
    }
    let target = Target::safe(Operation::UpdateTable, table, entity, None);
    let sent = client
        .execute(target, || {
            client
                .sdk()
                .update_table()
                .table_name(table)
                .stream_specification(stream_specification(view))
                .send()
        })
        .await;
    // Sent again after a lost answer (or raced by another instance), DynamoDB refuses to
    // enable a stream that is enabled: then it is there, which is the goal.
    if let Err(err) = sent {
        let enabled = describe(client, table, entity)
            .await?
            .is_some_and(|t| t.stream_specification().is_some_and(|s| s.stream_enabled()));
        if !enabled {
            return Err(err);
        }
    }
    tracing::info!(table, view = view.name(), "enabled the table's stream");
    wait_active(client, table, entity, wait).await
}

/// Adds the global index `index` of `schema` to `table` (an UpdateTable; it is then CREATING).
async fn add_global_index(
    client: &Client,
    table: &str,
    schema: &TableSchema,
    index: &IndexSchema,
    throughput: Option<ProvisionedThroughput>,
) -> Result<()> {
    let keys = std::iter::once(index.partition_key).chain(index.sort_key);
    let definitions: Vec<AttributeDefinition> = keys.map(|k| definition(&k)).collect();
    let create = CreateGlobalSecondaryIndexAction::builder()
        .index_name(index.name)
        .set_key_schema(Some(key_elements(
            &index.partition_key,
            index.sort_key.as_ref(),
        )))
        .projection(projection(&index.projection))
        .set_provisioned_throughput(throughput)
        .build()
        .expect("name, keys and projection are set");
    let update = GlobalSecondaryIndexUpdate::builder().create(create).build();
    // Sent again after a lost answer (or raced by another instance migrating too), it is
    // refused as a second creation of the index: then the index is there, which is the goal.
    let target = Target::safe(Operation::UpdateTable, table, schema.entity, None);
    let sent = client
        .execute(target, || {
            client
                .sdk()
                .update_table()
                .table_name(table)
                .set_attribute_definitions(Some(definitions.clone()))
                .global_secondary_index_updates(update.clone())
                .send()
        })
        .await;
    let Err(err) = sent else {
        tracing::info!(table, index = index.name, "added a global index");
        return Ok(());
    };
    let exists = describe(client, table, schema.entity)
        .await?
        .is_some_and(|t| {
            let indexes = t.global_secondary_indexes();
            indexes.iter().any(|g| g.index_name() == Some(index.name))
        });
    if !exists {
        return Err(err);
    }
    tracing::info!(
        table,
        index = index.name,
        "global index being added already"
    );
    Ok(())
}

impl<'a, E: Entity> IntoFuture for CreateTable<'a, E> {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

fn scalar(s: ScalarType) -> ScalarAttributeType {
    match s {
        ScalarType::String => ScalarAttributeType::S,
        ScalarType::Number => ScalarAttributeType::N,
        ScalarType::Binary => ScalarAttributeType::B,
    }
}

fn definition(key: &KeySchema) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(key.name)
        .attribute_type(scalar(key.scalar))
        .build()
        .expect("name and type are set")
}

fn key_element(key: &KeySchema, key_type: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(key.name)
        .key_type(key_type)
        .build()
        .expect("name and type are set")
}

fn key_elements(pk: &KeySchema, sk: Option<&KeySchema>) -> Vec<KeySchemaElement> {
    std::iter::once(key_element(pk, KeyType::Hash))
        .chain(sk.map(|k| key_element(k, KeyType::Range)))
        .collect()
}

fn projection(p: &Projection) -> SdkProjection {
    let builder = SdkProjection::builder();
    match p {
        Projection::All => builder.projection_type(ProjectionType::All),
        Projection::KeysOnly => builder.projection_type(ProjectionType::KeysOnly),
        Projection::Include(attrs) => builder
            .projection_type(ProjectionType::Include)
            .set_non_key_attributes(Some(attrs.iter().map(|a| a.to_string()).collect())),
    }
    .build()
}

fn create_request<E: Entity>(
    client: &Client,
    table: &str,
    billing: BillingMode,
) -> aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder {
    let schema = E::schema();
    let throughput = match billing {
        BillingMode::OnDemand => None,
        BillingMode::Provisioned { read, write } => Some(throughput(read, write)),
    };
    let definitions = schema.all_key_attributes().iter().map(definition).collect();
    let mut gsis = Vec::new();
    let mut lsis = Vec::new();
    for index in schema.indexes {
        let keys = key_elements(&index.partition_key, index.sort_key.as_ref());
        match index.kind {
            IndexKind::Global => gsis.push(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(keys))
                    .projection(projection(&index.projection))
                    .set_provisioned_throughput(throughput.clone())
                    .build()
                    .expect("name, keys and projection are set"),
            ),
            IndexKind::Local => lsis.push(
                LocalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(keys))
                    .projection(projection(&index.projection))
                    .build()
                    .expect("name, keys and projection are set"),
            ),
        }
    }
    client
        .sdk()
        .create_table()
        .table_name(table)
        .set_attribute_definitions(Some(definitions))
        .set_key_schema(Some(key_elements(
            &schema.partition_key,
            schema.sort_key.as_ref(),
        )))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .set_local_secondary_indexes((!lsis.is_empty()).then_some(lsis))
        .billing_mode(match billing {
            BillingMode::OnDemand => SdkBillingMode::PayPerRequest,
            BillingMode::Provisioned { .. } => SdkBillingMode::Provisioned,
        })
        .set_provisioned_throughput(throughput)
}

/// The attribute TTL is enabled (or being enabled) on, `None` when TTL is off.
async fn ttl_attribute(
    client: &Client,
    table: &str,
    entity: &'static str,
) -> Result<Option<String>> {
    use aws_sdk_dynamodb::types::TimeToLiveStatus;
    let target = Target::safe(Operation::DescribeTimeToLive, table, entity, None);
    let out = client
        .execute(target, || {
            client
                .sdk()
                .describe_time_to_live()
                .table_name(table)
                .send()
        })
        .await?;
    Ok(out
        .time_to_live_description
        .and_then(|d| match d.time_to_live_status {
            Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling) => d.attribute_name,
            _ => None,
        }))
}

/// The table's description, or `None` when it does not exist.
async fn describe(
    client: &Client,
    table: &str,
    entity: &'static str,
) -> Result<Option<aws_sdk_dynamodb::types::TableDescription>> {
    let target = Target::safe(Operation::DescribeTable, table, entity, None);
    match client
        .execute(target, || {
            client.sdk().describe_table().table_name(table).send()
        })
        .await
    {
        Ok(out) => Ok(out.table),
        Err(e) if e.is_resource_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

async fn wait_active(
    client: &Client,
    table: &str,
    entity: &'static str,
    timeout: Duration,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(50);
    loop {
        if let Some(desc) = describe(client, table, entity).await? {
            let indexes_active = desc.global_secondary_indexes().iter().all(|g| {
                g.index_status()
                    .is_none_or(|s| *s == aws_sdk_dynamodb::types::IndexStatus::Active)
            });
            if desc.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
        }
        if start.elapsed() >= timeout {
            return Err(Error::Timeout {
                table: table.to_owned(),
                state: "ACTIVE",
                waited: start.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// Deletes the table of `E`. Built by [`Entity::delete_table`]; missing tables are an error
/// unless [`if_exists`](Self::if_exists) is set.
#[must_use = "a DeleteTable does nothing until awaited"]
pub struct DeleteTable<'a, E: Entity> {
    client: &'a Client,
    if_exists: bool,
    _entity: PhantomData<fn() -> E>,
}

impl<E: Entity> std::fmt::Debug for DeleteTable<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeleteTable")
            .field("entity", &E::schema().entity)
            .finish_non_exhaustive()
    }
}

impl<'a, E: Entity> DeleteTable<'a, E> {
    pub(crate) fn new(client: &'a Client) -> Self {
        DeleteTable {
            client,
            if_exists: false,
            _entity: PhantomData,
        }
    }

    /// Succeed when the table does not exist.
    pub fn if_exists(mut self) -> Self {
        self.if_exists = true;
        self
    }

    /// Runs it.
    pub async fn send(self) -> Result<()> {
        let schema = E::schema();
        let table = self.client.table_name(schema.table);
        let target = Target::safe(Operation::DeleteTable, &table, schema.entity, None);
        match self
            .client
            .execute(target, || {
                self.client.sdk().delete_table().table_name(&table).send()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if self.if_exists && e.is_resource_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl<'a, E: Entity> IntoFuture for DeleteTable<'a, E> {
    type Output = Result<()>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}
