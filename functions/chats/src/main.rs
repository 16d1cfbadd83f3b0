//! Lambda entry point of the `/api/workspaces/{wid}/chats` route family.

#[tokio::main]
async fn main() -> Result<(), mako_lambda::Error> {
    mako_lambda::run(mako_chats::router).await
}
