//! Create, list, read, change and delete consoles.

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use mako_core::auth::{Attempt, WorkspaceCaller, retry_on_change};
use mako_core::http::{ApiJson, ApiPath, ApiQuery, created, ok};
use mako_core::ids::{ConnectionId, ConsoleId, FolderId};
use mako_core::repo::consoles::{Console, ConsoleError, Consoles, Folder, Language, RunStats, Visibility, name_key};
use mako_core::{ApiError, ApiResult, AppState};
use mako_databases::run::check_database;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{
    ConsoleView, FolderView, ParameterBody, check_code, check_connection, check_description, check_name,
    check_parameters, check_placeholders, connection_kind, double_option, parse_console_id, parse_folder_id,
};
use crate::tree::{Tree, Viewer};

/// Attempts at an update that keeps meeting changes to its folders.
const UPDATE_ATTEMPTS: usize = 6;

/// A console as a create request sends it.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `sql` or `mongodb`; the connection's language when absent.
    pub language: Option<Language>,
    #[serde(default)]
    pub code: String,
    pub connection_id: String,
    pub database: Option<String>,
    pub folder_id: Option<String>,
    /// `private` (the default) or `workspace`.
    pub visibility: Option<Visibility>,
    #[serde(default)]
    pub parameters: Vec<ParameterBody>,
}

/// A console change: absent fields keep their value; `version` is the one it was based on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateBody {
    version: Option<u64>,
    name: Option<String>,
    description: Option<String>,
    language: Option<Language>,
    code: Option<String>,
    connection_id: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    database: Option<Option<String>>,
    /// A folder id, or `null` for the top level.
    #[serde(default, deserialize_with = "double_option")]
    folder_id: Option<Option<String>>,
    visibility: Option<Visibility>,
    parameters: Option<Vec<ParameterBody>>,
}

fn parse_connection_id(text: &str) -> ApiResult<ConnectionId> {
    mako_databases::service::parse_id("connectionId", text)
}

/// Reads a console the caller can see; hidden ones are 404 like missing ones.
pub(crate) async fn load_visible(
    state: &AppState,
    access: &WorkspaceCaller,
    tree: &Tree,
    id: &ConsoleId,
) -> ApiResult<Console> {
    let viewer = Viewer::of(access);
    match Consoles::new(&*state.store).get(access.workspace_id(), id).await? {
        Some(console)
            if viewer.sees(&console.owner_id, console.visibility)
                && tree.path_visible(&viewer, console.folder_id.as_ref()) =>
        {
            Ok(console)
        }
        _ => Err(ApiError::not_found(format!(
            "Console {id} was not found in this workspace."
        ))),
    }
}

/// Rejects a visible console the caller may not change.
pub(crate) fn require_edit(viewer: &Viewer, console: &Console, action: &str) -> ApiResult<()> {
    viewer.require_member(action)?;
    if viewer.may_edit(&console.owner_id, console.visibility) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "NOT_EDITABLE",
        message: format!(
            "Console {} belongs to another member; {action} needs its owner, an admin or an owner of the workspace.",
            console.id
        ),
    })
}

/// Builds the view of one console with its statistics.
pub(crate) async fn view(
    state: &AppState,
    access: &WorkspaceCaller,
    tree: &Tree,
    console: Console,
) -> ApiResult<ConsoleView> {
    let stats = Consoles::new(&*state.store)
        .stats(access.workspace_id(), std::slice::from_ref(&console.id))
        .await?
        .pop()
        .unwrap_or_default();
    Ok(ConsoleView::new(console, stats, tree, &Viewer::of(access), true))
}

/// The 409 of an update based on a version that is no longer current.
pub(crate) async fn stale(
    state: &AppState,
    access: &WorkspaceCaller,
    tree: &Tree,
    current: Console,
    based_on: u64,
) -> ApiResult<ApiError> {
    let version = current.version;
    let view = view(state, access, tree, current).await?;
    Ok(ApiError::Conflict {
        code: "VERSION_CONFLICT",
        message: format!(
            "The console is at version {version} but this change was based on version {based_on}; \
             merge with the current version and send it again."
        ),
        details: Some(json!({ "currentVersion": version, "current": view })),
    })
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(
        "NAME_TAKEN",
        format!("A console named {name:?} already exists in that folder; pick another name."),
    )
}

pub(crate) async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Response> {
    Ok(created(create_console(&state, access, body).await?))
}

/// Creates a console of the caller (also the agent's `save_console` tool).
pub async fn create_console(state: &AppState, access: WorkspaceCaller, body: CreateBody) -> ApiResult<ConsoleView> {
    let viewer = Viewer::of(&access);
    viewer.require_member("creating consoles")?;
    let name = check_name("console name", &body.name)?;
    let description = check_description(&body.description)?;
    check_code(&body.code)?;
    if let Some(database) = &body.database {
        check_database(database)?;
    }
    let parameters = check_parameters(body.parameters)?;
    let connection_id = parse_connection_id(&body.connection_id)?;
    let (kind, language) = check_connection(state, access.workspace_id(), &connection_id, body.language).await?;
    check_placeholders(kind, &body.code, &parameters)?;
    let folder_id = body
        .folder_id
        .as_deref()
        .map(|id| parse_folder_id("folderId", id))
        .transpose()?;

    let now = Utc::now();
    let console = Console {
        id: ConsoleId::new(),
        workspace_id: access.workspace_id().clone(),
        name,
        description,
        language,
        code: body.code,
        connection_id,
        database: body.database,
        folder_id,
        owner_id: viewer.user.clone(),
        visibility: body.visibility.unwrap_or(Visibility::Private),
        parameters,
        version: 1,
        code_version: 1,
        created_at: now,
        updated_at: now,
        updated_by: viewer.user.clone(),
    };
    let max = state.config.consoles.max_per_workspace;
    let (console, tree) = retry_on_change(state, access.clone(), |access| {
        let state = state.clone();
        let console = console.clone();
        async move {
            let viewer = Viewer::of(&access);
            viewer.require_member("creating consoles")?;
            let tree = Tree::load(&state, &access).await?;
            let folders = tree.place(&viewer, "folderId", console.folder_id.as_ref(), &console.owner_id)?;
            match Consoles::new(&*state.store)
                .create(&access.workspace, &console, &folders, max)
                .await
            {
                Ok(()) => Ok(Attempt::Done((console, tree))),
                Err(ConsoleError::TooMany { max }) => Err(ApiError::conflict(
                    "TOO_MANY_CONSOLES",
                    format!("A workspace can hold at most {max} consoles (MAKO_MAX_CONSOLES_PER_WORKSPACE); delete unused ones first."),
                )),
                Err(ConsoleError::NameTaken) => Err(name_taken(&console.name)),
                Err(ConsoleError::Changed | ConsoleError::Retry) => Ok(Attempt::Changed),
                Err(ConsoleError::Store(error)) => Err(error.into()),
            }
        }
    })
    .await?;
    tracing::info!(workspace_id = %console.workspace_id, console_id = %console.id, "console created");
    Ok(ConsoleView::new(
        console,
        RunStats::default(),
        &tree,
        &Viewer::of(&access),
        true,
    ))
}

/// Consoles the caller can see whose name or description contains `text` (ignoring case),
/// in the list's order, without their code: the agent's `search_consoles` tool.
pub async fn search(
    state: &AppState,
    access: &WorkspaceCaller,
    text: Option<&str>,
    limit: usize,
) -> ApiResult<Vec<ConsoleView>> {
    let viewer = Viewer::of(access);
    let search = text.map(name_key).filter(|q| !q.is_empty());
    let tree = Tree::load(state, access).await?;
    let consoles = Consoles::new(&*state.store);
    let mut visible = visible_sorted(&consoles, access, &tree, &viewer, |console| {
        search.as_ref().is_none_or(|q| {
            name_key(&console.name).contains(q.as_str()) || name_key(&console.description).contains(q.as_str())
        })
    })
    .await?;
    visible.truncate(limit);
    let ids: Vec<ConsoleId> = visible.iter().map(|(_, console)| console.id.clone()).collect();
    let stats = consoles.stats(access.workspace_id(), &ids).await?;
    Ok(visible
        .into_iter()
        .zip(stats)
        .map(|((_, console), stats)| ConsoleView::new(console, stats, &tree, &viewer, false))
        .collect())
}

pub(crate) async fn details(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    let tree = Tree::load(&state, &access).await?;
    let console = load_visible(&state, &access, &tree, &id).await?;
    Ok(ok(view(&state, &access, &tree, console).await?))
}

pub(crate) async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    let viewer = Viewer::of(&access);
    viewer.require_member("changing consoles")?;
    let based_on = body.version.ok_or_else(|| {
        ApiError::invalid_field(
            "version",
            "The version is missing; send the version of the console this change was based on (data.version of its details).",
        )
    })?;
    let name = body
        .name
        .as_deref()
        .map(|name| check_name("console name", name))
        .transpose()?;
    let description = body.description.as_deref().map(check_description).transpose()?;
    if let Some(code) = &body.code {
        check_code(code)?;
    }
    if let Some(Some(database)) = &body.database {
        check_database(database)?;
    }
    let parameters = body.parameters.map(check_parameters).transpose()?;
    let connection_id = body.connection_id.as_deref().map(parse_connection_id).transpose()?;
    let folder_id: Option<Option<FolderId>> = match &body.folder_id {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(parse_folder_id("folderId", text)?)),
    };

    for _ in 0..UPDATE_ATTEMPTS {
        let tree = Tree::load(&state, &access).await?;
        let current = load_visible(&state, &access, &tree, &id).await?;
        require_edit(&viewer, &current, "changing it")?;
        if based_on != current.version {
            return Err(stale(&state, &access, &tree, current, based_on).await?);
        }

        let mut updated = current.clone();
        if let Some(name) = &name {
            updated.name = name.clone();
        }
        if let Some(description) = &description {
            updated.description = description.clone();
        }
        if let Some(code) = &body.code {
            updated.code = code.clone();
        }
        if let Some(database) = &body.database {
            updated.database = database.clone();
        }
        if let Some(parameters) = &parameters {
            updated.parameters = parameters.clone();
        }
        if let Some(connection_id) = &connection_id {
            updated.connection_id = connection_id.clone();
        }
        let mut kind = None;
        if connection_id.is_some() || body.language.is_some() {
            // Without a language, the connection's is taken; a language given must suit it.
            let (checked_kind, language) =
                check_connection(&state, access.workspace_id(), &updated.connection_id, body.language).await?;
            kind = Some(checked_kind);
            updated.language = language;
            // Code written for one language does not run in the other.
            if updated.language != current.language && body.code.is_none() {
                return Err(ApiError::invalid_field(
                    "connectionId",
                    format!(
                        "Connection {} runs {} consoles but this console's code is {}; send new code with it.",
                        updated.connection_id,
                        crate::model::language_name(updated.language),
                        crate::model::language_name(current.language)
                    ),
                ));
            }
        }
        if updated.runs_differently_from(&current) {
            if kind.is_none() {
                kind = connection_kind(&state, access.workspace_id(), &updated.connection_id).await?;
            }
            if let Some(kind) = kind {
                check_placeholders(kind, &updated.code, &updated.parameters)?;
            }
        }
        if let Some(visibility) = body.visibility
            && visibility != current.visibility
        {
            if current.owner_id != viewer.user {
                return Err(ApiError::forbidden("Only the console's owner can change who sees it."));
            }
            updated.visibility = visibility;
        }
        if let Some(folder_id) = &folder_id {
            updated.folder_id = folder_id.clone();
        }
        // A console staying where it is keeps its place even if that place would no longer
        // be allowed for a new item.
        let new_folders: Vec<Folder> = if updated.folder_id != current.folder_id {
            tree.place(&viewer, "folderId", updated.folder_id.as_ref(), &updated.owner_id)?
        } else {
            tree.chain(updated.folder_id.as_ref()).into_iter().cloned().collect()
        };
        let old_folder = current.folder_id.as_ref().and_then(|id| tree.get(id));

        updated.version = current.version + 1;
        if updated.runs_differently_from(&current) {
            updated.code_version = updated.version;
        }
        updated.updated_at = Utc::now();
        updated.updated_by = viewer.user.clone();

        match Consoles::new(&*state.store)
            .update(&current, &updated, old_folder, &new_folders)
            .await
        {
            Ok(()) => {
                tracing::info!(
                    workspace_id = %updated.workspace_id,
                    console_id = %id,
                    version = updated.version,
                    "console changed"
                );
                return Ok(ok(view(&state, &access, &tree, updated).await?));
            }
            Err(ConsoleError::Changed) => {
                let tree = Tree::load(&state, &access).await?;
                let current = load_visible(&state, &access, &tree, &id).await?;
                return Err(stale(&state, &access, &tree, current, based_on).await?);
            }
            Err(ConsoleError::NameTaken) => return Err(name_taken(&updated.name)),
            Err(ConsoleError::Retry) => continue,
            Err(error @ ConsoleError::TooMany { .. }) => return Err(ApiError::internal(error)),
            Err(ConsoleError::Store(error)) => return Err(error.into()),
        }
    }
    Err(ApiError::conflict(
        "CONCURRENT_CHANGE",
        "The console's folders kept changing while this request ran; retry it.",
    ))
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath((_, id)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_console_id(&id)?;
    Viewer::of(&access).require_member("deleting consoles")?;
    retry_on_change(&state, access, |access| {
        let state = state.clone();
        let id = id.clone();
        async move {
            let tree = Tree::load(&state, &access).await?;
            let console = load_visible(&state, &access, &tree, &id).await?;
            require_edit(&Viewer::of(&access), &console, "deleting it")?;
            let folder = console.folder_id.as_ref().and_then(|id| tree.get(id));
            match Consoles::new(&*state.store)
                .delete(&access.workspace, &console, folder)
                .await
            {
                Ok(()) => Ok(Attempt::Done(())),
                Err(ConsoleError::Changed | ConsoleError::Retry) => Ok(Attempt::Changed),
                Err(ConsoleError::Store(error)) => Err(error.into()),
                Err(error @ (ConsoleError::NameTaken | ConsoleError::TooMany { .. })) => Err(ApiError::internal(error)),
            }
        }
    })
    .await?;
    tracing::info!(console_id = %id, "console deleted");
    Ok(ok(json!({ "id": id, "deleted": true })))
}

/// `?view=&folderId=&connectionId=&q=&limit=&cursor=` of the list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ListParams {
    /// `flat` (the default): a page of consoles with their folder paths; `tree`: every
    /// visible folder with the consoles inside, unpaginated.
    view: Option<String>,
    /// Only consoles in this folder or below it.
    folder_id: Option<String>,
    connection_id: Option<String>,
    /// Only consoles whose name contains this text, ignoring case.
    q: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Sort key of the flat list: folder path, name, id, each compared without case.
fn sort_key(path: &[String], console: &Console) -> String {
    let path: Vec<String> = path.iter().map(|name| name_key(name)).collect();
    format!(
        "{}\u{1}{}\u{1}{}",
        path.join("\u{2}"),
        name_key(&console.name),
        console.id
    )
}

/// Returns the consoles the caller can see that pass `filter`, each with its list sort key,
/// in list order.
async fn visible_sorted(
    consoles: &Consoles<'_>,
    access: &WorkspaceCaller,
    tree: &Tree,
    viewer: &Viewer,
    filter: impl Fn(&Console) -> bool,
) -> ApiResult<Vec<(String, Console)>> {
    let mut visible: Vec<(String, Console)> = consoles
        .all_consoles(access.workspace_id())
        .await?
        .into_iter()
        .filter(|console| {
            viewer.sees(&console.owner_id, console.visibility)
                && tree.path_visible(viewer, console.folder_id.as_ref())
                && filter(console)
        })
        .map(|console| (sort_key(&tree.path(console.folder_id.as_ref()), &console), console))
        .collect();
    visible.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(visible)
}

pub(crate) async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> ApiResult<Response> {
    let viewer = Viewer::of(&access);
    let tree_view = match params.view.as_deref() {
        None | Some("flat") => false,
        Some("tree") => true,
        Some(other) => {
            return Err(ApiError::invalid_field(
                "view",
                format!("{other:?} is not a list view; use flat or tree."),
            ));
        }
    };
    let limit = match params.limit {
        None => 50,
        Some(limit @ 1..=200) => limit as usize,
        Some(limit) => {
            return Err(ApiError::invalid_field(
                "limit",
                format!("limit must be between 1 and 200, got {limit}"),
            ));
        }
    };
    let folder_id = params
        .folder_id
        .as_deref()
        .map(|id| parse_folder_id("folderId", id))
        .transpose()?;
    let connection_id = params.connection_id.as_deref().map(parse_connection_id).transpose()?;
    let search = params.q.as_deref().map(name_key).filter(|q| !q.is_empty());
    let after = match &params.cursor {
        Some(cursor) => Some(
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "cursor",
                        "The cursor is invalid; pass the nextCursor value of the previous page.",
                    )
                })?,
        ),
        None => None,
    };

    let tree = Tree::load(&state, &access).await?;
    if let Some(id) = &folder_id {
        tree.destination(&viewer, "folderId", id)?;
    }
    let consoles = Consoles::new(&*state.store);
    let mut visible = visible_sorted(&consoles, &access, &tree, &viewer, |console| {
        folder_id
            .as_ref()
            .is_none_or(|folder| console.folder_id.as_ref().is_some_and(|id| tree.is_within(id, folder)))
            && connection_id.as_ref().is_none_or(|id| &console.connection_id == id)
            && search
                .as_ref()
                .is_none_or(|q| name_key(&console.name).contains(q.as_str()))
    })
    .await?;

    if tree_view {
        let filtered = folder_id.is_some() || connection_id.is_some() || search.is_some();
        let consoles: Vec<Console> = visible.into_iter().map(|(_, console)| console).collect();
        let ids: Vec<ConsoleId> = consoles.iter().map(|console| console.id.clone()).collect();
        let stats = Consoles::new(&*state.store).stats(access.workspace_id(), &ids).await?;
        let views: Vec<ConsoleView> = consoles
            .into_iter()
            .zip(stats)
            .map(|(console, stats)| ConsoleView::new(console, stats, &tree, &viewer, false))
            .collect();
        return Ok(ok(build_tree(&tree, &viewer, views, filtered)));
    }

    let start = match &after {
        Some(after) => visible.partition_point(|(key, _)| key <= after),
        None => 0,
    };
    let page: Vec<(String, Console)> = visible.drain(start..).take(limit + 1).collect();
    let more = page.len() > limit;
    let page: Vec<(String, Console)> = page.into_iter().take(limit).collect();
    let next_cursor = if more {
        page.last().map(|(key, _)| URL_SAFE_NO_PAD.encode(key.as_bytes()))
    } else {
        None
    };
    let ids: Vec<ConsoleId> = page.iter().map(|(_, console)| console.id.clone()).collect();
    let stats = consoles.stats(access.workspace_id(), &ids).await?;
    let views: Vec<ConsoleView> = page
        .into_iter()
        .zip(stats)
        .map(|((_, console), stats)| ConsoleView::new(console, stats, &tree, &viewer, false))
        .collect();
    Ok(mako_core::http::ok_page(views, next_cursor))
}

/// Nests visible folders and consoles: `{"folders": [{…, "folders": […], "consoles": […]}],
/// "consoles": [top-level consoles]}`. With a filter, only folders on the way to a match
/// appear.
fn build_tree(tree: &Tree, viewer: &Viewer, consoles: Vec<ConsoleView>, filtered: bool) -> Value {
    use std::collections::{BTreeMap, HashSet};

    let mut by_folder: BTreeMap<Option<FolderId>, Vec<Value>> = BTreeMap::new();
    let mut needed: HashSet<FolderId> = HashSet::new();
    for console in consoles {
        for folder in tree.chain(console.folder_id.as_ref()) {
            needed.insert(folder.id.clone());
        }
        let folder = console.folder_id.clone();
        by_folder
            .entry(folder)
            .or_default()
            .push(serde_json::to_value(console).unwrap_or(Value::Null));
    }
    let mut folders: Vec<_> = tree
        .folders()
        .filter(|folder| tree.folder_visible(viewer, folder) && (!filtered || needed.contains(&folder.id)))
        .collect();
    folders.sort_by_key(|folder| (name_key(&folder.name), folder.id.clone()));

    fn node(
        parent: Option<&FolderId>,
        folders: &[&mako_core::repo::consoles::Folder],
        by_folder: &mut BTreeMap<Option<FolderId>, Vec<Value>>,
        tree: &Tree,
        viewer: &Viewer,
        depth: usize,
    ) -> (Vec<Value>, Vec<Value>) {
        let mut children = Vec::new();
        if depth <= crate::tree::MAX_DEPTH {
            for folder in folders.iter().filter(|folder| folder.parent_id.as_ref() == parent) {
                let (subfolders, consoles) = node(Some(&folder.id), folders, by_folder, tree, viewer, depth + 1);
                let mut value = serde_json::to_value(FolderView::new(folder, tree, viewer)).unwrap_or(Value::Null);
                value["folders"] = Value::Array(subfolders);
                value["consoles"] = Value::Array(consoles);
                children.push(value);
            }
        }
        let consoles = by_folder.remove(&parent.cloned()).unwrap_or_default();
        (children, consoles)
    }

    let (folders, consoles) = node(None, &folders, &mut by_folder, tree, viewer, 1);
    json!({ "folders": folders, "consoles": consoles })
}
