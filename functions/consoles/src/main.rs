//! Lambda entry point of the `/api/workspaces/{wid}/consoles` route family.

#[tokio::main]
async fn main() -> Result<(), mako_lambda::Error> {
    mako_lambda::run(mako_consoles::router).await
}
