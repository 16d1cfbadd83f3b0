//! Lambda entry point of the `/api/execute` route.

#[tokio::main]
async fn main() -> Result<(), mako_lambda::Error> {
    mako_lambda::run(mako_execute::router).await
}
