//! The example jobs a new installation starts with (in the `default` tenant): a solo5 hvt
//! unikernel and a Rust program, each built from source by a worker, reproducibly. The tests
//! build the same recipes.

use std::collections::BTreeMap;

use petrel_wire::workers::Recipe;
use sqlx::PgPool;
use uuid::Uuid;

/// The project's own hello-world unikernel (the tender's test guest), from its C sources.
pub fn unikernel_recipe() -> Recipe {
    let files: BTreeMap<String, String> = [
        ("Makefile", include_str!("../../hypervisor-agent/guests/Makefile")),
        ("hello.c", include_str!("../../hypervisor-agent/guests/hello.c")),
        ("rt.c", include_str!("../../hypervisor-agent/guests/rt.c")),
        ("rt.h", include_str!("../../hypervisor-agent/guests/rt.h")),
        ("start.S", include_str!("../../hypervisor-agent/guests/start.S")),
        ("hvt_abi.h", include_str!("../../hypervisor-agent/guests/hvt_abi.h")),
        ("hvt.ld", include_str!("../../hypervisor-agent/guests/hvt.ld")),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_string(), text.to_string()))
    .collect();
    Recipe {
        script: "make OUT=build build/hello.hvt\n\
                 mkdir -p \"$PETREL_OUTPUT/bin\"\n\
                 cp build/hello.hvt \"$PETREL_OUTPUT/bin/hello.hvt\"\n"
            .into(),
        files,
        env: BTreeMap::new(),
        network: false,
        template: None,
    }
}

/// A Rust program with its `Cargo.lock`, built offline with `--locked`. The worker must
/// expose a Rust toolchain (`petrel-worker run --tool-dir rust=auto`).
pub fn rust_recipe() -> Recipe {
    let files: BTreeMap<String, String> = [
        ("Cargo.toml", include_str!("../../worker/recipes/rust-hello/Cargo.toml")),
        ("Cargo.lock", include_str!("../../worker/recipes/rust-hello/Cargo.lock")),
        ("src/main.rs", include_str!("../../worker/recipes/rust-hello/src/main.rs")),
    ]
    .into_iter()
    .map(|(name, text)| (name.to_string(), text.to_string()))
    .collect();
    Recipe {
        script: "export CARGO_HOME=\"$HOME/.cargo\"\n\
                 export RUSTFLAGS=\"--remap-path-prefix=$PWD=/build\"\n\
                 cargo build --locked --release --offline\n\
                 mkdir -p \"$PETREL_OUTPUT/bin\"\n\
                 cp target/release/rust-hello \"$PETREL_OUTPUT/bin/rust-hello\"\n"
            .into(),
        files,
        env: BTreeMap::new(),
        network: false,
        template: None,
    }
}

/// (name, synopsis, recipe) of every example job.
pub fn examples() -> Vec<(&'static str, &'static str, Recipe)> {
    vec![
        ("hello-unikernel", "A solo5 hvt unikernel built from C sources", unikernel_recipe()),
        ("rust-hello", "A Rust program built with cargo --locked", rust_recipe()),
    ]
}

/// Creates the example jobs in `tenant` for `platform` (manual runs only), skipping names
/// that exist.
pub async fn create_examples(db: &PgPool, tenant: Uuid, platform: &str) -> Result<(), sqlx::Error> {
    for (name, synopsis, recipe) in examples() {
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, name, platforms, synopsis, recipe)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(Uuid::new_v4())
        .bind(tenant)
        .bind(name)
        .bind(vec![platform.to_string()])
        .bind(synopsis)
        .bind(sqlx::types::Json(&recipe))
        .execute(db)
        .await?;
    }
    Ok(())
}
