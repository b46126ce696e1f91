//! Migrations are reversible: every up, every down, and every up again, as operators roll a
//! live database back.

use petrel_tests::TestDb;

async fn tables(pool: &sqlx::PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn every_migration_goes_up_down_and_up_again() {
    let db = TestDb::empty().await;
    let migrator = &petrel_api::db::MIGRATOR;
    assert!(migrator.iter().all(|m| m.migration_type.is_reversible()), "every migration needs a .down.sql");
    assert!(tables(&db.pool).await.is_empty());

    migrator.run(&db.pool).await.expect("up");
    let after_up = tables(&db.pool).await;
    assert!(after_up.contains(&"tenants".to_string()), "{after_up:?}");
    assert_eq!(
        petrel_api::db::readiness(&db.pool).await,
        (true, true, Some(petrel_api::db::latest_migration()))
    );

    migrator.undo(&db.pool, 0).await.expect("down");
    assert!(tables(&db.pool).await.is_empty(), "down leaves tables behind: {:?}", tables(&db.pool).await);
    let types: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_type WHERE typname = 'member_role'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(types, 0, "down leaves the enum type behind");
    assert!(!petrel_api::db::readiness(&db.pool).await.1);

    migrator.run(&db.pool).await.expect("up again");
    assert_eq!(tables(&db.pool).await, after_up);
}
