//! Create, list, read, change, duplicate and delete dashboards.

use std::collections::HashMap;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use mako_core::access::Viewer;
use mako_core::auth::WorkspaceCaller;
use mako_core::http::{ApiJson, ApiPath, ApiQuery, created, ok};
use mako_core::ids::{DashboardFolderId, DashboardId};
use mako_core::repo::consoles::Visibility;
use mako_core::repo::dashboards::{Dashboard, DashboardError, DashboardFolder, Dashboards, DataSource};
use mako_core::repo::materializations::{Materializations, Trigger};
use mako_core::{ApiError, ApiResult, AppState};
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;

use crate::model::{
    DashboardSummary, DashboardView, DataSourceBody, FilterBody, WidgetBody, check_data_sources, check_description,
    check_filters, check_size, check_title, check_widgets, double_option, fresh_id, parse_dashboard_id,
    parse_folder_id,
};

/// Attempts at a change that keeps meeting changes to its folders.
const ATTEMPTS: usize = 12;

/// Returns whether the caller sees a dashboard.
pub fn sees(viewer: &Viewer, dashboard: &Dashboard) -> bool {
    viewer.sees(&dashboard.owner_id, dashboard.visibility)
}

/// Returns whether the caller may change or delete a dashboard.
pub fn may_edit(viewer: &Viewer, dashboard: &Dashboard) -> bool {
    viewer.may_edit(&dashboard.owner_id, dashboard.visibility)
}

/// Rejects a caller who may not change a visible dashboard, naming the action.
pub fn require_edit(viewer: &Viewer, dashboard: &Dashboard, action: &str) -> ApiResult<()> {
    viewer.require_member(action)?;
    if may_edit(viewer, dashboard) {
        return Ok(());
    }
    Err(ApiError::Forbidden {
        code: "NOT_EDITABLE",
        message: format!(
            "Dashboard {} belongs to another member; {action} needs its owner, an admin or an owner of the workspace.",
            dashboard.id
        ),
    })
}

/// Reads a dashboard the caller can see; hidden ones are 404 like missing ones.
pub async fn load_visible(state: &AppState, access: &WorkspaceCaller, id: &DashboardId) -> ApiResult<Dashboard> {
    match Dashboards::new(&*state.store).get(access.workspace_id(), id).await? {
        Some(dashboard) if sees(&Viewer::of(access), &dashboard) => Ok(dashboard),
        _ => Err(ApiError::not_found(format!(
            "Dashboard {id} was not found in this workspace."
        ))),
    }
}

pub async fn load_folder(
    state: &AppState,
    access: &WorkspaceCaller,
    field: &str,
    id: &DashboardFolderId,
) -> ApiResult<DashboardFolder> {
    Dashboards::new(&*state.store)
        .folder(access.workspace_id(), id)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field(field, format!("Dashboard folder {id} was not found in this workspace."))
        })
}

fn view(access: &WorkspaceCaller, dashboard: Dashboard) -> DashboardView {
    let can_edit = may_edit(&Viewer::of(access), &dashboard);
    DashboardView { dashboard, can_edit }
}

fn concurrent() -> ApiError {
    ApiError::conflict(
        "CONCURRENT_CHANGE",
        "A folder involved kept changing while this request ran; send it again.",
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListQuery {
    /// Only dashboards in this folder; `root` for the top level.
    folder_id: Option<String>,
    /// Case-insensitive text in the title or description.
    search: Option<String>,
}

/// `GET /api/workspaces/{wid}/dashboards`: visible dashboards, most recently changed first.
pub async fn list(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let viewer = Viewer::of(&access);
    let folder = match query.folder_id.as_deref() {
        None => None,
        Some("root") => Some(None),
        Some(text) => Some(Some(parse_folder_id("folderId", text)?)),
    };
    let search = query.search.map(|text| text.to_lowercase());
    let mut dashboards: Vec<Dashboard> = Dashboards::new(&*state.store)
        .all(access.workspace_id())
        .await?
        .into_iter()
        .filter(|dashboard| sees(&viewer, dashboard))
        .filter(|dashboard| folder.as_ref().is_none_or(|folder| &dashboard.folder_id == folder))
        .filter(|dashboard| {
            search.as_ref().is_none_or(|search| {
                dashboard.title.to_lowercase().contains(search) || dashboard.description.to_lowercase().contains(search)
            })
        })
        .collect();
    dashboards.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| b.id.cmp(&a.id)));
    let summaries: Vec<DashboardSummary> = dashboards
        .iter()
        .map(|dashboard| DashboardSummary::new(dashboard, may_edit(&viewer, dashboard)))
        .collect();
    Ok(ok(summaries))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBody {
    title: String,
    #[serde(default)]
    description: String,
    folder_id: Option<String>,
    /// `private` (the default) or `workspace`.
    visibility: Option<Visibility>,
    #[serde(default)]
    data_sources: Vec<DataSourceBody>,
    #[serde(default)]
    widgets: Vec<WidgetBody>,
    #[serde(default)]
    global_filters: Vec<FilterBody>,
}

/// `POST /api/workspaces/{wid}/dashboards`.
pub async fn create(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<Response> {
    let viewer = Viewer::of(&access);
    viewer.require_member("creating a dashboard")?;
    let title = check_title("title", &body.title)?;
    let description = check_description(&body.description)?;
    let folder_id = body
        .folder_id
        .as_deref()
        .map(|text| parse_folder_id("folderId", text))
        .transpose()?;
    let data_sources = check_data_sources(&state, &access, body.data_sources).await?;
    let widgets = check_widgets(body.widgets, &data_sources)?;
    let global_filters = check_filters(body.global_filters, &data_sources)?;

    check_limit(&state, &access).await?;
    let now = Utc::now();
    let dashboard = Dashboard {
        id: DashboardId::new(),
        workspace_id: access.workspace_id().clone(),
        title,
        description,
        folder_id,
        owner_id: viewer.user.clone(),
        visibility: body.visibility.unwrap_or(Visibility::Private),
        data_sources,
        widgets,
        global_filters,
        version: 1,
        created_at: now,
        updated_at: now,
        updated_by: viewer.user.clone(),
    };
    check_size(&dashboard)?;
    store_new(&state, &access, &dashboard).await?;
    Ok(created(view(&access, dashboard)))
}

/// Rejects a new dashboard when the workspace already contains the maximum.
// NOTE: the count is read before the write, so parallel creates can pass the limit by a few.
async fn check_limit(state: &AppState, access: &WorkspaceCaller) -> ApiResult<()> {
    let max = state.config.jobs.max_dashboards_per_workspace;
    if Dashboards::new(&*state.store).all(access.workspace_id()).await?.len() >= max as usize {
        return Err(ApiError::conflict(
            "LIMIT_REACHED",
            format!(
                "The workspace already has {max} dashboards (MAKO_MAX_DASHBOARDS_PER_WORKSPACE); delete some first."
            ),
        ));
    }
    Ok(())
}

/// Stores a new dashboard in its folder and sets up the schedules of its data sources.
async fn store_new(state: &AppState, access: &WorkspaceCaller, dashboard: &Dashboard) -> ApiResult<()> {
    let repo = Dashboards::new(&*state.store);
    let mut stored = false;
    for _ in 0..ATTEMPTS {
        let folder = match &dashboard.folder_id {
            Some(id) => Some(load_folder(state, access, "folderId", id).await?),
            None => None,
        };
        match repo.create(dashboard, folder.as_ref()).await {
            Ok(()) => {
                stored = true;
                break;
            }
            Err(DashboardError::Retry) => {
                // Creates into one folder compete for its child count: spread the retries.
                let pause = rand::rng().random_range(5..60);
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                continue;
            }
            Err(DashboardError::Changed) => return Err(concurrent()),
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    if !stored {
        return Err(concurrent());
    }
    for source in dashboard.data_sources.iter().filter(|source| source.schedule.is_some()) {
        mako_jobs::queue::reschedule(state, dashboard, source).await?;
    }
    Ok(())
}

/// `GET /api/workspaces/{wid}/dashboards/{did}`.
pub async fn get(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = parse_dashboard_id(params.get("did").map(String::as_str).unwrap_or_default())?;
    let dashboard = load_visible(&state, &access, &id).await?;
    Ok(ok(view(&access, dashboard)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateBody {
    /// The version this change was based on.
    version: Option<u64>,
    title: Option<String>,
    description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    folder_id: Option<Option<String>>,
    visibility: Option<Visibility>,
    data_sources: Option<Vec<DataSourceBody>>,
    widgets: Option<Vec<WidgetBody>>,
    global_filters: Option<Vec<FilterBody>>,
}

/// `PUT /api/workspaces/{wid}/dashboards/{did}`: absent fields keep their value; lists
/// (data sources, widgets, filters) are replaced whole.
pub async fn update(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> ApiResult<Response> {
    let id = parse_dashboard_id(params.get("did").map(String::as_str).unwrap_or_default())?;
    let viewer = Viewer::of(&access);
    let Some(based_on) = body.version else {
        return Err(ApiError::invalid_field(
            "version",
            "Send the version this change is based on (the dashboard's current \"version\").",
        ));
    };
    let current = load_visible(&state, &access, &id).await?;
    require_edit(&viewer, &current, "changing it")?;
    if current.version != based_on {
        return Err(stale(&access, current, based_on));
    }
    if body.visibility == Some(Visibility::Private) && current.owner_id != viewer.user {
        return Err(ApiError::Forbidden {
            code: "NOT_OWNER",
            message: "Only the dashboard's owner can make it private.".into(),
        });
    }

    let mut next = current.clone();
    if let Some(title) = &body.title {
        next.title = check_title("title", title)?;
    }
    if let Some(description) = &body.description {
        next.description = check_description(description)?;
    }
    if let Some(folder) = &body.folder_id {
        next.folder_id = folder
            .as_deref()
            .map(|text| parse_folder_id("folderId", text))
            .transpose()?;
    }
    if let Some(visibility) = body.visibility {
        next.visibility = visibility;
    }
    if let Some(sources) = body.data_sources {
        next.data_sources = check_data_sources(&state, &access, sources).await?;
    }
    if let Some(widgets) = body.widgets {
        next.widgets = check_widgets(widgets, &next.data_sources)?;
    } else {
        // Widgets and filters must still point at data sources that exist.
        next.widgets = check_widgets(widgets_as_bodies(&next), &next.data_sources)?;
    }
    if let Some(filters) = body.global_filters {
        next.global_filters = check_filters(filters, &next.data_sources)?;
    } else {
        next.global_filters = check_filters(filters_as_bodies(&next), &next.data_sources)?;
    }
    next.version = current.version + 1;
    next.updated_at = Utc::now();
    next.updated_by = viewer.user.clone();
    check_size(&next)?;

    let repo = Dashboards::new(&*state.store);
    let mut stored = false;
    for _ in 0..ATTEMPTS {
        let old_folder = match &current.folder_id {
            Some(id) => repo.folder(access.workspace_id(), id).await?,
            None => None,
        };
        let new_folder = match &next.folder_id {
            Some(id) if next.folder_id != current.folder_id => {
                Some(load_folder(&state, &access, "folderId", id).await?)
            }
            Some(_) => old_folder.clone(),
            None => None,
        };
        match repo
            .update(&current, &next, old_folder.as_ref(), new_folder.as_ref())
            .await
        {
            Ok(()) => {
                stored = true;
                break;
            }
            Err(DashboardError::Retry) => continue,
            Err(DashboardError::Changed) => {
                let latest = load_visible(&state, &access, &id).await?;
                return Err(stale(&access, latest, based_on));
            }
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    if !stored {
        return Err(concurrent());
    }
    let rebuilding = follow_sources(&state, &viewer, &current, &next).await?;
    let mut response = serde_json::to_value(view(&access, next)).map_err(ApiError::internal)?;
    response["rebuilding"] = json!(rebuilding);
    Ok(ok(response))
}

/// Brings the materialization state in line with changed data sources: removed ones lose
/// their artifact, changed definitions are rebuilt, changed schedules are rescheduled.
/// Returns the ids of the data sources queued for a rebuild.
async fn follow_sources(state: &AppState, viewer: &Viewer, old: &Dashboard, new: &Dashboard) -> ApiResult<Vec<String>> {
    let mut rebuilding = Vec::new();
    let repo = Materializations::new(&*state.store);
    for record in repo.of_dashboard(&new.workspace_id, &new.id).await? {
        if new.data_source(&record.value.data_source_id).is_none() {
            mako_jobs::queue::forget(state, &record.value).await?;
        }
    }
    for source in &new.data_sources {
        let before: Option<&DataSource> = old.data_source(&source.id);
        let changed = before.is_some_and(|before| before.definition() != source.definition());
        if changed {
            let state_of = repo.get(&new.workspace_id, &new.id, &source.id).await?;
            let built_or_building = state_of
                .as_ref()
                .is_some_and(|record| record.value.artifact.is_some() || record.value.job.is_some());
            if built_or_building {
                mako_jobs::queue::request(state, new, source, Trigger::Change, Some(viewer.user.clone()), true).await?;
                rebuilding.push(source.id.clone());
                continue;
            }
        }
        if before.map(|before| &before.schedule) != Some(&source.schedule) {
            mako_jobs::queue::reschedule(state, new, source).await?;
        }
    }
    Ok(rebuilding)
}

fn widgets_as_bodies(dashboard: &Dashboard) -> Vec<WidgetBody> {
    dashboard
        .widgets
        .iter()
        .map(|widget| WidgetBody {
            id: Some(widget.id.clone()),
            kind: widget.kind,
            title: widget.title.clone(),
            data_source_id: widget.data_source_id.clone(),
            spec: widget.spec.clone(),
            settings: widget.settings.clone(),
            text: widget.text.clone(),
            layout: widget.layout,
        })
        .collect()
}

fn filters_as_bodies(dashboard: &Dashboard) -> Vec<FilterBody> {
    dashboard
        .global_filters
        .iter()
        .map(|filter| FilterBody {
            id: Some(filter.id.clone()),
            name: filter.name.clone(),
            kind: filter.kind.clone(),
            default: filter.default.clone(),
            targets: filter.targets.clone(),
        })
        .collect()
}

/// The 409 of a change based on a version that is no longer current.
fn stale(access: &WorkspaceCaller, current: Dashboard, based_on: u64) -> ApiError {
    let version = current.version;
    let current = serde_json::to_value(view(access, current)).unwrap_or_default();
    ApiError::Conflict {
        code: "VERSION_CONFLICT",
        message: format!(
            "The dashboard is at version {version} but this change was based on version {based_on}; \
             merge with the current version and send it again."
        ),
        details: Some(json!({ "currentVersion": version, "current": current })),
    }
}

/// `DELETE /api/workspaces/{wid}/dashboards/{did}`: the dashboard, its materialization
/// state and its artifacts.
pub async fn delete(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
) -> ApiResult<Response> {
    let id = parse_dashboard_id(params.get("did").map(String::as_str).unwrap_or_default())?;
    let repo = Dashboards::new(&*state.store);
    for _ in 0..ATTEMPTS {
        let dashboard = load_visible(&state, &access, &id).await?;
        require_edit(&Viewer::of(&access), &dashboard, "deleting it")?;
        let folder = match &dashboard.folder_id {
            Some(folder) => repo.folder(access.workspace_id(), folder).await?,
            None => None,
        };
        match repo.delete(&dashboard, folder.as_ref()).await {
            Ok(()) => {
                for record in Materializations::new(&*state.store)
                    .of_dashboard(access.workspace_id(), &id)
                    .await?
                {
                    mako_jobs::queue::forget(&state, &record.value).await?;
                }
                state
                    .blobs
                    .delete_prefix(&format!("ws/{}/dashboards/{id}/", access.workspace_id()))
                    .await?;
                return Ok(ok(json!({ "id": id, "deleted": true })));
            }
            Err(DashboardError::Retry | DashboardError::Changed) => continue,
            Err(DashboardError::Store(error)) => return Err(error.into()),
        }
    }
    Err(concurrent())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DuplicateBody {
    title: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    folder_id: Option<Option<String>>,
    visibility: Option<Visibility>,
}

/// `POST /api/workspaces/{wid}/dashboards/{did}/duplicate`: a deep copy owned by the caller,
/// with fresh ids for the dashboard, its data sources, widgets and filters, every reference
/// remapped, and no artifacts of its own until it is materialized.
pub async fn duplicate(
    State(state): State<AppState>,
    access: WorkspaceCaller,
    ApiPath(params): ApiPath<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let id = parse_dashboard_id(params.get("did").map(String::as_str).unwrap_or_default())?;
    let body: DuplicateBody = if body.iter().all(u8::is_ascii_whitespace) {
        DuplicateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::validation(format!(
                "Invalid JSON body: {}",
                error.to_string().chars().take(300).collect::<String>()
            ))
        })?
    };
    let viewer = Viewer::of(&access);
    viewer.require_member("duplicating a dashboard")?;
    let original = load_visible(&state, &access, &id).await?;
    check_limit(&state, &access).await?;

    let mut copy = original.clone();
    copy.id = DashboardId::new();
    copy.title = match &body.title {
        Some(title) => check_title("title", title)?,
        None => copy_title(&original.title),
    };
    if let Some(folder) = &body.folder_id {
        copy.folder_id = folder
            .as_deref()
            .map(|text| parse_folder_id("folderId", text))
            .transpose()?;
    }
    copy.owner_id = viewer.user.clone();
    copy.visibility = body.visibility.unwrap_or(Visibility::Private);
    let sources: HashMap<String, String> = copy
        .data_sources
        .iter()
        .map(|source| (source.id.clone(), fresh_id("ds")))
        .collect();
    for source in &mut copy.data_sources {
        if let Some(fresh) = sources.get(&source.id) {
            source.id = fresh.clone();
        }
    }
    for widget in &mut copy.widgets {
        widget.id = fresh_id("wdg");
        if let Some(source) = widget.data_source_id.as_mut()
            && let Some(fresh) = sources.get(source)
        {
            *source = fresh.clone();
        }
    }
    for filter in &mut copy.global_filters {
        filter.id = fresh_id("flt");
        for target in &mut filter.targets {
            if let Some(fresh) = sources.get(&target.data_source_id) {
                target.data_source_id = fresh.clone();
            }
        }
    }
    let now = Utc::now();
    copy.version = 1;
    copy.created_at = now;
    copy.updated_at = now;
    copy.updated_by = viewer.user.clone();
    check_size(&copy)?;
    store_new(&state, &access, &copy).await?;
    Ok(created(view(&access, copy)))
}

/// "<title> (copy)", shortened so it stays within the title limit.
fn copy_title(title: &str) -> String {
    const SUFFIX: &str = " (copy)";
    let room = 200 - SUFFIX.chars().count();
    let kept: String = title.chars().take(room).collect();
    format!("{kept}{SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_titles_fit() {
        assert_eq!(copy_title("Revenue"), "Revenue (copy)");
        assert_eq!(copy_title(&"x".repeat(200)).chars().count(), 200);
    }
}
