//! The layer through an axum app.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

mod common;

use common::Backend;

async fn placeholder(_backend: Backend) {}

on_every_store!(placeholder);
