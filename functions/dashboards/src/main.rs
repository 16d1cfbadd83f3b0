//! Lambda entry point of the dashboard, dashboard-folder and materialization routes.

#[tokio::main]
async fn main() -> Result<(), mako_lambda::Error> {
    mako_lambda::run(mako_dashboards::router).await
}
