//! Lambda entry point of the `/api/agent` route family. Chat replies stream, so this
//! function runs with Lambda response streaming behind a function URL.

#[tokio::main]
async fn main() -> Result<(), mako_lambda::Error> {
    mako_lambda::run_streaming(mako_agent::router).await
}
