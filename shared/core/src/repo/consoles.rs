//! Consoles (saved queries), their folders, the versions of their code and their run
//! statistics.
//!
//! Every record lives in the workspace's partition:
//!
//! | record | sk |
//! |---|---|
//! | console | `CONSOLE#<consoleId>` |
//! | folder | `CFOLDER#<folderId>` |
//! | name claim | `CNAME#C#<folderId or ->#<W or U<ownerId>>#<name>` (consoles), `CNAME#F#…` (folders) |
//! | code version | `CVERSION#<consoleId>#<version, 10 digits>` |
//! | run statistics | `CSTATS#<consoleId>` |
//!
//! A name claim makes names unique within a folder, case-insensitively (see [`NameSlot`]). A folder counts its
//! children, and every change that adds or removes a child rewrites the folder under a
//! version condition in the same transaction, so "delete only when empty" cannot race with
//! a console being added. Run statistics are an item of their own so that running a console
//! never changes the version an editor based an update on.

use chrono::{DateTime, Utc};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use super::workspaces::{Workspace, WorkspaceError, next_meta, workspace_partition};
use super::{Versioned, from_item, to_data};
use crate::ids::{ConnectionId, ConsoleId, FolderId, UserId, WorkspaceId};
use crate::ports::{Condition, Item, Key, Query, Store, StoreError, Write};

/// Visibility of a console or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only its owner.
    Private,
    /// Every member of the workspace.
    Workspace,
}

/// Language of a console's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Sql,
    Mongodb,
}

/// A declared parameter, written `{{name}}` in the code.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    pub name: String,
    /// `text`, `number`, `integer`, `boolean`, `date`, `timestamp`, `timestamptz`, or one of
    /// them followed by `[]` for a list.
    #[serde(rename = "type")]
    pub kind: String,
    /// Value used when a run gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    /// A run must give a value, unless there is a default. Optional parameters without a
    /// default are NULL.
    pub required: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Console {
    pub id: ConsoleId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub language: Language,
    /// The code. It is stored once, in the code version `code_version`, so listing reads no
    /// code: [`Consoles::get`] fills it in, and [`Consoles::all_consoles`] leaves it empty.
    #[serde(default, skip_serializing)]
    pub code: String,
    pub connection_id: ConnectionId,
    /// Database to run in instead of the connection's.
    pub database: Option<String>,
    pub folder_id: Option<FolderId>,
    pub owner_id: UserId,
    pub visibility: Visibility,
    pub parameters: Vec<ParameterSpec>,
    /// Increases with every change; an update names the version it was based on.
    pub version: u64,
    /// The version at which the code (or language, connection, database or parameters) last
    /// changed; its snapshot is the newest code version.
    pub code_version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: UserId,
}

impl Console {
    /// Returns the snapshot of what runs: code, language, connection, database and parameters.
    pub fn snapshot(&self) -> CodeVersion {
        CodeVersion {
            console_id: self.id.clone(),
            version: self.version,
            language: self.language,
            code: self.code.clone(),
            connection_id: self.connection_id.clone(),
            database: self.database.clone(),
            parameters: self.parameters.clone(),
            author_id: self.updated_by.clone(),
            created_at: self.updated_at,
        }
    }

    /// Returns whether `other` runs something different.
    pub fn runs_differently_from(&self, other: &Console) -> bool {
        self.code != other.code
            || self.language != other.language
            || self.connection_id != other.connection_id
            || self.database != other.database
            || self.parameters != other.parameters
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Folder {
    pub id: FolderId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub parent_id: Option<FolderId>,
    pub owner_id: UserId,
    pub visibility: Visibility,
    /// Consoles and folders directly inside.
    pub child_count: u32,
    /// Store version, which also changes when a child is added or removed.
    pub version: u64,
    /// Version of what people edit (name, place, visibility), which an update names.
    #[serde(default = "first_revision")]
    pub revision: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Attempts at recording a run before giving up with a warning.
const RECORD_ATTEMPTS: u64 = 64;

fn first_revision() -> u64 {
    1
}

/// A console's code at one version, kept for every version that changed it.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CodeVersion {
    pub console_id: ConsoleId,
    pub version: u64,
    pub language: Language,
    pub code: String,
    pub connection_id: ConnectionId,
    pub database: Option<String>,
    pub parameters: Vec<ParameterSpec>,
    /// Author of this version.
    pub author_id: UserId,
    pub created_at: DateTime<Utc>,
}

/// Statistics of a console's runs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStats {
    pub run_count: u64,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_duration_ms: Option<u64>,
    pub last_row_count: Option<u64>,
    /// The error of the last run, when it failed.
    pub last_error: Option<String>,
}

/// The outcome of one run, for [`Consoles::record_run`].
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub row_count: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the workspace already has {max} of them")]
    TooMany { max: u32 },
    #[error("the name is taken in that folder")]
    NameTaken,
    /// The console or folder itself changed since it was read.
    #[error("the record changed concurrently")]
    Changed,
    /// The workspace or a folder involved changed since it was read; read again and retry.
    #[error("a related record changed concurrently")]
    Retry,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<WorkspaceError> for ConsoleError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::Store(error) => ConsoleError::Store(error),
            _ => ConsoleError::Retry,
        }
    }
}

/// Kind of record a name belongs to; consoles and folders have separate names.
#[derive(Clone, Copy)]
enum NameKind {
    Console,
    Folder,
}

/// Form of a name that claims compare: NFC, then upper and lower case, which folds case
/// fully enough that "Straße" matches "STRASSE" and a final sigma matches a medial one.
pub fn name_key(name: &str) -> String {
    name.nfc().collect::<String>().to_uppercase().to_lowercase()
}

fn console_key(workspace: &WorkspaceId, id: &ConsoleId) -> Key {
    Key::new(workspace_partition(workspace), format!("CONSOLE#{id}"))
}

fn folder_key(workspace: &WorkspaceId, id: &FolderId) -> Key {
    Key::new(workspace_partition(workspace), format!("CFOLDER#{id}"))
}

/// The place where a name must be unique: a folder (or the top level), and for a private
/// item its owner's private items there. A private name also may not repeat a workspace
/// item's name in the folder, nor a workspace name its owner's private one. It may repeat
/// another member's private name, so a taken name never reveals someone else's private item.
#[derive(Clone, Copy)]
struct NameSlot<'n> {
    kind: NameKind,
    parent: Option<&'n FolderId>,
    owner: &'n UserId,
    visibility: Visibility,
    name: &'n str,
}

impl<'n> NameSlot<'n> {
    fn of_console(console: &'n Console) -> Self {
        NameSlot {
            kind: NameKind::Console,
            parent: console.folder_id.as_ref(),
            owner: &console.owner_id,
            visibility: console.visibility,
            name: &console.name,
        }
    }

    fn of_folder(folder: &'n Folder) -> Self {
        NameSlot {
            kind: NameKind::Folder,
            parent: folder.parent_id.as_ref(),
            owner: &folder.owner_id,
            visibility: folder.visibility,
            name: &folder.name,
        }
    }

    fn key_in(&self, workspace: &WorkspaceId, scope: &str) -> Key {
        let kind = match self.kind {
            NameKind::Console => "C",
            NameKind::Folder => "F",
        };
        let parent = self.parent.map_or("-", FolderId::as_str);
        Key::new(
            workspace_partition(workspace),
            format!("CNAME#{kind}#{parent}#{scope}#{}", name_key(self.name)),
        )
    }

    /// Returns the key of the claim this item holds.
    fn key(&self, workspace: &WorkspaceId) -> Key {
        match self.visibility {
            Visibility::Workspace => self.shared_key(workspace),
            Visibility::Private => self.owner_key(workspace),
        }
    }

    /// Returns the key of the claim a private item of this owner and name holds.
    fn owner_key(&self, workspace: &WorkspaceId) -> Key {
        self.key_in(workspace, &format!("U{}", self.owner))
    }

    /// Returns the key of the claim a workspace item of this name holds.
    fn shared_key(&self, workspace: &WorkspaceId) -> Key {
        self.key_in(workspace, "W")
    }
}

fn version_prefix(id: &ConsoleId) -> String {
    format!("CVERSION#{id}#")
}

fn version_key(workspace: &WorkspaceId, id: &ConsoleId, version: u64) -> Key {
    Key::new(
        workspace_partition(workspace),
        format!("{}{version:010}", version_prefix(id)),
    )
}

fn stats_key(workspace: &WorkspaceId, id: &ConsoleId) -> Key {
    Key::new(workspace_partition(workspace), format!("CSTATS#{id}"))
}

/// Meaning of a failed condition on one write of a transaction.
#[derive(Clone, Copy)]
enum Failure {
    Changed,
    Retry,
    NameTaken,
}

impl Failure {
    fn error(self) -> ConsoleError {
        match self {
            Failure::Changed => ConsoleError::Changed,
            Failure::Retry => ConsoleError::Retry,
            Failure::NameTaken => ConsoleError::NameTaken,
        }
    }
}

/// The writes of one transaction, each with what its failure means.
#[derive(Default)]
struct Writes {
    writes: Vec<(Write, Failure)>,
    /// Name claims this transaction deletes.
    released: Vec<Key>,
}

impl Writes {
    fn push(&mut self, write: Write, failure: Failure) {
        self.writes.push((write, failure));
    }

    fn put(&mut self, item: Item, condition: Condition, failure: Failure) {
        self.push(Write::Put { item, condition }, failure);
    }

    /// Claims a name. A private one also checks that no workspace item has it, and a
    /// workspace one that its owner has no private item of that name.
    fn claim(&mut self, workspace: &WorkspaceId, slot: NameSlot<'_>, id: &str) {
        let key = slot.key(workspace);
        let item = Item::new(key.clone(), serde_json::json!({ "id": id }));
        self.put(item, Condition::NotExists, Failure::NameTaken);
        let other = match slot.visibility {
            Visibility::Private => slot.shared_key(workspace),
            Visibility::Workspace => slot.owner_key(workspace),
        };
        // A claim released in this transaction is gone once it applies; a transaction
        // cannot both delete and check one key.
        if !self.released.contains(&other) {
            self.push(
                Write::Check {
                    key: other,
                    condition: Condition::NotExists,
                },
                Failure::NameTaken,
            );
        }
    }

    fn release(&mut self, workspace: &WorkspaceId, slot: NameSlot<'_>) {
        let key = slot.key(workspace);
        self.released.push(key.clone());
        self.push(
            Write::Delete {
                key,
                condition: Condition::Always,
            },
            Failure::Retry,
        );
    }

    /// Moves a name claim when the name, place or visibility changed.
    fn move_claim(&mut self, workspace: &WorkspaceId, old: NameSlot<'_>, new: NameSlot<'_>, id: &str) {
        if old.key(workspace) != new.key(workspace) {
            self.release(workspace, old);
            self.claim(workspace, new, id);
        }
    }

    /// Rewrites `folder` with `delta` children, conditioned on the version it was read at.
    fn count_child(&mut self, folder: &Folder, delta: i64) -> Result<(), StoreError> {
        let mut updated = folder.clone();
        let count = i64::from(folder.child_count) + delta;
        updated.child_count = u32::try_from(count.max(0)).unwrap_or(u32::MAX);
        updated.version = folder.version + 1;
        self.put(
            folder_item(&updated)?,
            Condition::Version(folder.version),
            Failure::Retry,
        );
        Ok(())
    }

    /// Checks that folders this transaction does not write keep the versions read, so a
    /// concurrent move or visibility change of one of them makes the transaction fail.
    fn check_unchanged(&mut self, workspace: &WorkspaceId, folders: &[Folder]) {
        for folder in folders {
            let key = folder_key(workspace, &folder.id);
            if self.writes.iter().any(|(write, _)| write.key() == key) {
                continue;
            }
            self.push(
                Write::Check {
                    key,
                    condition: Condition::Version(folder.version),
                },
                Failure::Retry,
            );
        }
    }

    async fn apply(self, store: &dyn Store) -> Result<(), ConsoleError> {
        let failures: Vec<Failure> = self.writes.iter().map(|(_, failure)| *failure).collect();
        let writes = self.writes.into_iter().map(|(write, _)| write).collect();
        match store.transact(writes).await {
            Ok(()) => Ok(()),
            Err(StoreError::ConditionFailed { index: Some(index) }) => {
                Err(failures.get(index).copied().unwrap_or(Failure::Retry).error())
            }
            Err(StoreError::ConditionFailed { index: None }) => Err(ConsoleError::Retry),
            Err(error) => Err(error.into()),
        }
    }
}

fn console_item(console: &Console) -> Result<Item, StoreError> {
    let mut item = Item::new(console_key(&console.workspace_id, &console.id), to_data(console)?);
    item.version = console.version;
    Ok(item)
}

fn folder_item(folder: &Folder) -> Result<Item, StoreError> {
    let mut item = Item::new(folder_key(&folder.workspace_id, &folder.id), to_data(folder)?);
    item.version = folder.version;
    Ok(item)
}

fn version_item(workspace: &WorkspaceId, snapshot: &CodeVersion) -> Result<Item, StoreError> {
    Ok(Item::new(
        version_key(workspace, &snapshot.console_id, snapshot.version),
        to_data(snapshot)?,
    ))
}

/// A folder's old and new parent, and the folders whose versions must not change meanwhile.
pub struct FolderMove<'f> {
    pub old_parent: Option<&'f Folder>,
    pub new_parent: Option<&'f Folder>,
    /// Folders above the new place, checked unchanged so that two concurrent moves cannot
    /// make a cycle or nest too deep, and folders below, so that nothing is added under a
    /// folder while it becomes private.
    pub unchanged: &'f [Folder],
}

pub struct Consoles<'a> {
    store: &'a dyn Store,
}

impl<'a> Consoles<'a> {
    pub fn new(store: &'a dyn Store) -> Self {
        Self { store }
    }

    /// Reads a console with its code.
    pub async fn get(&self, workspace: &WorkspaceId, id: &ConsoleId) -> Result<Option<Console>, StoreError> {
        let item = self.store.get(&console_key(workspace, id)).await?;
        let Some(mut console) = item.map(from_item::<Console>).transpose()?.map(|record| record.value) else {
            return Ok(None);
        };
        let snapshot = self
            .version(workspace, id, console.code_version)
            .await?
            .ok_or_else(|| {
                StoreError::backend(anyhow::anyhow!(
                    "console {id} has no code version {}",
                    console.code_version
                ))
            })?;
        console.code = snapshot.code;
        Ok(Some(console))
    }

    pub async fn folder(&self, workspace: &WorkspaceId, id: &FolderId) -> Result<Option<Folder>, StoreError> {
        let item = self.store.get(&folder_key(workspace, id)).await?;
        Ok(item.map(from_item::<Folder>).transpose()?.map(|record| record.value))
    }

    /// Reads every record under `prefix` of a workspace.
    async fn read_all<T: serde::de::DeserializeOwned>(
        &self,
        workspace: &WorkspaceId,
        prefix: &str,
    ) -> Result<Vec<T>, StoreError> {
        let records = super::read_prefix::<T>(self.store, workspace_partition(workspace), prefix).await?;
        Ok(records.into_iter().map(|record| record.value).collect())
    }

    /// Reads every console of a workspace, without code. The number is bounded by the
    /// workspace's limit.
    pub async fn all_consoles(&self, workspace: &WorkspaceId) -> Result<Vec<Console>, StoreError> {
        self.read_all(workspace, "CONSOLE#").await
    }

    /// Reads every folder of a workspace. The number is bounded by the workspace's limit.
    pub async fn all_folders(&self, workspace: &WorkspaceId) -> Result<Vec<Folder>, StoreError> {
        self.read_all(workspace, "CFOLDER#").await
    }

    /// Creates a console and its first code version, unless the workspace already has `max`.
    /// `folders` is its folder and those above it, innermost first (empty at the top level).
    pub async fn create(
        &self,
        workspace: &Versioned<Workspace>,
        console: &Console,
        folders: &[Folder],
        max: u32,
    ) -> Result<(), ConsoleError> {
        let folder = folders.first();
        if workspace.value.console_count >= max {
            return Err(ConsoleError::TooMany { max });
        }
        let ws = &console.workspace_id;
        let mut writes = Writes::default();
        writes.push(
            next_meta(workspace, |workspace| {
                workspace.console_count += 1;
                Ok(())
            })?,
            Failure::Retry,
        );
        writes.put(console_item(console)?, Condition::NotExists, Failure::Retry);
        writes.claim(ws, NameSlot::of_console(console), console.id.as_str());
        writes.put(
            version_item(ws, &console.snapshot())?,
            Condition::NotExists,
            Failure::Retry,
        );
        if let Some(folder) = folder {
            writes.count_child(folder, 1)?;
        }
        writes.check_unchanged(ws, folders);
        writes.apply(self.store).await
    }

    /// Replaces `current` with `updated`, whose `version` must be the next one. A rename or
    /// move moves the name claim; a move between folders recounts both; a change to what
    /// runs keeps a new code version. `new_folders` is the new folder and those above it.
    pub async fn update(
        &self,
        current: &Console,
        updated: &Console,
        old_folder: Option<&Folder>,
        new_folders: &[Folder],
    ) -> Result<(), ConsoleError> {
        let new_folder = new_folders.first();
        let ws = &current.workspace_id;
        let mut writes = Writes::default();
        writes.put(
            console_item(updated)?,
            Condition::Version(current.version),
            Failure::Changed,
        );
        let moved = current.folder_id != updated.folder_id;
        writes.move_claim(
            ws,
            NameSlot::of_console(current),
            NameSlot::of_console(updated),
            updated.id.as_str(),
        );
        if moved {
            if let Some(folder) = old_folder {
                writes.count_child(folder, -1)?;
            }
            if let Some(folder) = new_folder {
                writes.count_child(folder, 1)?;
            }
            writes.check_unchanged(ws, new_folders);
        }
        if updated.code_version == updated.version {
            writes.put(
                version_item(ws, &updated.snapshot())?,
                Condition::NotExists,
                Failure::Retry,
            );
        }
        writes.apply(self.store).await
    }

    /// Deletes a console, then its code versions and statistics.
    pub async fn delete(
        &self,
        workspace: &Versioned<Workspace>,
        console: &Console,
        folder: Option<&Folder>,
    ) -> Result<(), ConsoleError> {
        let ws = &console.workspace_id;
        let mut writes = Writes::default();
        writes.push(
            next_meta(workspace, |workspace| {
                workspace.console_count = workspace.console_count.saturating_sub(1);
                Ok(())
            })?,
            Failure::Retry,
        );
        writes.push(
            Write::Delete {
                key: console_key(ws, &console.id),
                condition: Condition::Version(console.version),
            },
            Failure::Changed,
        );
        writes.release(ws, NameSlot::of_console(console));
        if let Some(folder) = folder {
            writes.count_child(folder, -1)?;
        }
        writes.apply(self.store).await?;

        // The console is gone, so nothing reads these any more; a failure here leaves items
        // that only workspace deletion removes.
        if let Err(error) = self.delete_history(ws, &console.id).await {
            tracing::warn!(console_id = %console.id, error = %error, "failed to delete a console's versions");
        }
        Ok(())
    }

    async fn delete_history(&self, workspace: &WorkspaceId, id: &ConsoleId) -> Result<(), StoreError> {
        self.store.delete(&stats_key(workspace, id), Condition::Always).await?;
        loop {
            let query = Query::partition(workspace_partition(workspace))
                .begins_with(version_prefix(id))
                .limit(100);
            let page = self.store.query(&query).await?;
            if page.items.is_empty() {
                return Ok(());
            }
            for item in page.items {
                self.store.delete(&item.key(), Condition::Always).await?;
            }
        }
    }

    /// Reads one page of a console's code versions, newest first.
    pub async fn versions(
        &self,
        workspace: &WorkspaceId,
        id: &ConsoleId,
        limit: u32,
        cursor: Option<String>,
    ) -> Result<(Vec<CodeVersion>, Option<String>), StoreError> {
        let query = Query::partition(workspace_partition(workspace))
            .begins_with(version_prefix(id))
            .backwards()
            .limit(limit)
            .after(cursor);
        super::query_records(self.store, &query).await
    }

    pub async fn version(
        &self,
        workspace: &WorkspaceId,
        id: &ConsoleId,
        version: u64,
    ) -> Result<Option<CodeVersion>, StoreError> {
        let item = self.store.get(&version_key(workspace, id, version)).await?;
        Ok(item
            .map(from_item::<CodeVersion>)
            .transpose()?
            .map(|record| record.value))
    }

    /// Reads the run statistics of consoles; the result is aligned with `ids`.
    pub async fn stats(&self, workspace: &WorkspaceId, ids: &[ConsoleId]) -> Result<Vec<RunStats>, StoreError> {
        let mut all = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::ports::store::MAX_BATCH_GET_KEYS) {
            let keys: Vec<Key> = chunk.iter().map(|id| stats_key(workspace, id)).collect();
            for item in self.store.batch_get(&keys).await? {
                let stats = item.map(from_item::<RunStats>).transpose()?;
                all.push(stats.map(|stats| stats.value).unwrap_or_default());
            }
        }
        Ok(all)
    }

    /// Adds a run to a console's statistics. Concurrent runs each count: the write is
    /// conditioned on the version read and retried. The "last run" fields keep the run that
    /// started last, whichever finishes last.
    pub async fn record_run(
        &self,
        workspace: &WorkspaceId,
        id: &ConsoleId,
        outcome: &RunOutcome,
    ) -> Result<(), StoreError> {
        let key = stats_key(workspace, id);
        for attempt in 1..=RECORD_ATTEMPTS {
            if attempt > 1 {
                // Concurrent runs of one console take turns: a random pause that grows with
                // each attempt spreads them out.
                let bound = (attempt * attempt).min(100);
                let pause = rand::rng().random_range(0..=bound);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            let current = self.store.get(&key).await?.map(from_item::<RunStats>).transpose()?;
            let (mut stats, condition, version) = match current {
                Some(current) => (current.value, Condition::Version(current.version), current.version + 1),
                None => (RunStats::default(), Condition::NotExists, 1),
            };
            stats.run_count += 1;
            if stats.last_run_at.is_none_or(|last| last <= outcome.started_at) {
                stats.last_run_at = Some(outcome.started_at);
                stats.last_duration_ms = Some(outcome.duration_ms);
                stats.last_row_count = outcome.row_count;
                stats.last_error = outcome.error.clone();
            }
            let mut item = Item::new(key.clone(), to_data(&stats)?);
            item.version = version;
            // The console must still exist, so a run that ends after its deletion leaves no
            // statistics behind.
            let writes = vec![
                Write::Check {
                    key: console_key(workspace, id),
                    condition: Condition::Exists,
                },
                Write::Put { item, condition },
            ];
            match self.store.transact(writes).await {
                Err(StoreError::ConditionFailed { index: Some(0) }) => return Ok(()),
                Err(StoreError::ConditionFailed { .. }) => continue,
                other => return other,
            }
        }
        Err(StoreError::Throttled)
    }

    /// Creates a folder, unless the workspace already has `max`. `parents` is its parent and
    /// those above it, innermost first.
    pub async fn create_folder(
        &self,
        workspace: &Versioned<Workspace>,
        folder: &Folder,
        parents: &[Folder],
        max: u32,
    ) -> Result<(), ConsoleError> {
        let parent = parents.first();
        if workspace.value.console_folder_count >= max {
            return Err(ConsoleError::TooMany { max });
        }
        let ws = &folder.workspace_id;
        let mut writes = Writes::default();
        writes.push(
            next_meta(workspace, |workspace| {
                workspace.console_folder_count += 1;
                Ok(())
            })?,
            Failure::Retry,
        );
        writes.put(folder_item(folder)?, Condition::NotExists, Failure::Retry);
        writes.claim(ws, NameSlot::of_folder(folder), folder.id.as_str());
        if let Some(parent) = parent {
            writes.count_child(parent, 1)?;
        }
        writes.check_unchanged(ws, parents);
        writes.apply(self.store).await
    }

    /// Replaces `current` with `updated` (next version): rename, move, visibility.
    pub async fn update_folder(
        &self,
        current: &Folder,
        updated: &Folder,
        moving: FolderMove<'_>,
    ) -> Result<(), ConsoleError> {
        let ws = &current.workspace_id;
        let mut writes = Writes::default();
        writes.put(
            folder_item(updated)?,
            Condition::Version(current.version),
            Failure::Changed,
        );
        let moved = current.parent_id != updated.parent_id;
        writes.move_claim(
            ws,
            NameSlot::of_folder(current),
            NameSlot::of_folder(updated),
            updated.id.as_str(),
        );
        if moved {
            if let Some(parent) = moving.old_parent {
                writes.count_child(parent, -1)?;
            }
            if let Some(parent) = moving.new_parent {
                writes.count_child(parent, 1)?;
            }
        }
        writes.check_unchanged(ws, moving.unchanged);
        writes.apply(self.store).await
    }

    /// Deletes an empty folder; the version condition fails if a child arrived meanwhile.
    pub async fn delete_folder(
        &self,
        workspace: &Versioned<Workspace>,
        folder: &Folder,
        parent: Option<&Folder>,
    ) -> Result<(), ConsoleError> {
        let ws = &folder.workspace_id;
        let mut writes = Writes::default();
        writes.push(
            next_meta(workspace, |workspace| {
                workspace.console_folder_count = workspace.console_folder_count.saturating_sub(1);
                Ok(())
            })?,
            Failure::Retry,
        );
        writes.push(
            Write::Delete {
                key: folder_key(ws, &folder.id),
                condition: Condition::Version(folder.version),
            },
            Failure::Changed,
        );
        writes.release(ws, NameSlot::of_folder(folder));
        if let Some(parent) = parent {
            writes.count_child(parent, -1)?;
        }
        writes.apply(self.store).await
    }
}

#[cfg(test)]
mod tests {
    use super::name_key;

    #[test]
    fn name_keys_fold_case() {
        assert_eq!(name_key("Straße"), name_key("STRASSE"));
        assert_eq!(name_key("ΟΔΟΣ"), name_key("οδος"));
        assert_eq!(name_key("Cafe\u{301}"), name_key("CAFÉ"));
        assert_ne!(name_key("Q3"), name_key("Q4"));
    }
}
