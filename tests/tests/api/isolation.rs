//! Tenant isolation: another tenant's ids never resolve, are never listed, and errors say
//! nothing about them. Sub-tenants see nothing of their parent or siblings. The role matrix
//! (roles.rs) checks this for every operation of the OpenAPI document; these are the cases it
//! does not reach (the same names and binaries in two tenants, builder-web's URLs).

use petrel_tests::{Api, TestServer};
use serde_json::json;
use sha2::{Digest, Sha256};

#[tokio::test]
async fn another_tenants_objects_answer_404_like_objects_that_do_not_exist() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let mine = api.tenant("mine", None).await;
    let theirs = api.tenant("theirs", None).await;
    let (_, me) = api.user("me").await;
    let (their_user, them) = api.user("them").await;
    api.member(mine, "me", "owner").await;
    api.member(theirs, "them", "owner").await;
    let (their_token, _) = Api::token(&them, theirs, "viewer").await;
    let nowhere = uuid::Uuid::new_v4();

    for (existing, missing) in [
        (format!("/api/v1/tenants/{theirs}"), format!("/api/v1/tenants/{nowhere}")),
        (format!("/api/v1/tenants/{theirs}/members"), format!("/api/v1/tenants/{nowhere}/members")),
        (format!("/api/v1/tenants/{theirs}/tokens"), format!("/api/v1/tenants/{nowhere}/tokens")),
        (format!("/api/v1/tenants/{theirs}/audit"), format!("/api/v1/tenants/{nowhere}/audit")),
        (format!("/api/v1/users/{their_user}"), format!("/api/v1/users/{nowhere}")),
    ] {
        let a = me.get(&existing).await.expect_problem(404, "not-found");
        let b = me.get(&missing).await.expect_problem(404, "not-found");
        assert_eq!(a.text, b.text, "the 404 for {existing} differs from one for a missing object");
    }
    let writes = [
        me.post(&format!("/api/v1/tenants/{theirs}/members"), json!({"username": "me", "role": "owner"}))
            .await,
        me.put(&format!("/api/v1/tenants/{theirs}/members/{their_user}"), json!({"role": "viewer"})).await,
        me.delete(&format!("/api/v1/tenants/{theirs}/members/{their_user}")).await,
        me.delete(&format!("/api/v1/tenants/{theirs}")).await,
        me.delete(&format!("/api/v1/tokens/{their_token}")).await,
        me.post("/api/v1/tenants", json!({"name": "squat", "parent_id": theirs})).await,
        me.post("/api/v1/tokens", json!({"name": "x", "tenant_id": theirs, "role": "viewer"})).await,
    ];
    for w in writes {
        w.expect_problem(404, "not-found");
    }
    let listed = me.get("/api/v1/tenants").await.expect(200);
    assert!(!listed.text.contains(&theirs.to_string()));
    assert!(!me.get("/api/v1/tokens").await.text.contains(&their_token.to_string()));
    // Nothing changed on their side.
    let members = them.get(&format!("/api/v1/tenants/{theirs}/members")).await.expect(200);
    assert_eq!(members.body["items"].as_array().unwrap().len(), 1);
    them.get("/api/v1/me").await.expect(200);
}

#[tokio::test]
async fn sub_tenants_inherit_downwards_and_see_nothing_upwards_or_sideways() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let parent = api.tenant("parent", None).await;
    let left = api.tenant("left", Some(parent)).await;
    let right = api.tenant("right", Some(parent)).await;
    let grandchild = api.tenant("deep", Some(left)).await;
    let (_, boss) = api.user("boss").await;
    let (_, lefty) = api.user("lefty").await;
    api.member(parent, "boss", "owner").await;
    api.member(left, "lefty", "owner").await;

    // The parent's owner owns the whole subtree.
    for t in [parent, left, right, grandchild] {
        let r = boss.get(&format!("/api/v1/tenants/{t}")).await.expect(200);
        assert_eq!(r.body["my_role"], "owner");
    }
    // The sub-tenant's owner sees its own subtree only.
    lefty.get(&format!("/api/v1/tenants/{left}")).await.expect(200);
    lefty.get(&format!("/api/v1/tenants/{grandchild}")).await.expect(200);
    lefty.get(&format!("/api/v1/tenants/{parent}")).await.expect_problem(404, "not-found");
    lefty.get(&format!("/api/v1/tenants/{right}")).await.expect_problem(404, "not-found");
    let listed = lefty.get("/api/v1/tenants").await.expect(200);
    let names: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["deep", "left"]);
    // It may create and delete below itself, not delete itself.
    let made =
        lefty.post("/api/v1/tenants", json!({"name": "lab", "parent_id": left})).await.expect(201).id();
    lefty.delete(&format!("/api/v1/tenants/{made}")).await.expect(204);
    lefty.delete(&format!("/api/v1/tenants/{left}")).await.expect_problem(403, "insufficient-role");
    // A tenant with sub-tenants is not deleted.
    boss.delete(&format!("/api/v1/tenants/{left}")).await.expect_problem(409, "tenant-has-children");
    // Sibling names may repeat in different parents, not under one.
    lefty.post("/api/v1/tenants", json!({"name": "right", "parent_id": left})).await.expect(201);
    boss.post("/api/v1/tenants", json!({"name": "right", "parent_id": parent}))
        .await
        .expect_problem(409, "tenant-name-taken");
}

#[tokio::test]
async fn a_tenant_keeps_an_owner() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let t = api.tenant("solo", None).await;
    let (owner_id, owner) = api.user("owner").await;
    api.member(t, "owner", "owner").await;
    owner
        .put(&format!("/api/v1/tenants/{t}/members/{owner_id}"), json!({"role": "viewer"}))
        .await
        .expect_problem(409, "last-owner");
    owner.delete(&format!("/api/v1/tenants/{t}/members/{owner_id}")).await.expect_problem(409, "last-owner");
    owner
        .post(&format!("/api/v1/tenants/{t}/members"), json!({"username": "owner", "role": "viewer"}))
        .await
        .expect_problem(409, "already-member");
    owner
        .post(&format!("/api/v1/tenants/{t}/members"), json!({"username": "ghost", "role": "viewer"}))
        .await
        .expect_problem(400, "validation-failed");
}

#[tokio::test]
async fn the_same_binary_and_job_name_in_two_tenants_resolve_to_each_callers_own_build() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    let api = Api { admin: &admin };
    let mine = api.tenant("mine", None).await;
    let theirs = api.tenant("theirs", None).await;
    let (_, me) = api.user("me").await;
    let (_, them) = api.user("them").await;
    api.member(mine, "me", "viewer").await;
    api.member(theirs, "them", "viewer").await;
    let binary = std::fs::read("/usr/bin/true").unwrap();
    let sha = hex::encode(Sha256::digest(&binary));
    let mut builds = Vec::new();
    // `theirs` builds last: the newest build with the hash is one `me` may not see.
    for tenant in [mine, theirs] {
        let job = api.job(tenant, "shared", false).await;
        let build = Api::build(&admin, job, &[("bin/a.hvt", &binary)]).await;
        builds.push(build["id"].as_str().unwrap().to_string());
    }
    for (client, own, other) in [(&me, &builds[0], &builds[1]), (&them, &builds[1], &builds[0])] {
        let r = client.get(&format!("/api/v1/hash/{sha}")).await.expect(200);
        assert_eq!(r.body["build"]["id"], own.as_str(), "{}", r.text);
        assert!(!r.text.contains(other.as_str()), "{}", r.text);
        // builder-web's URLs: the bare job name is not ambiguous, the other job being invisible.
        for path in [format!("/hash?sha256={sha}"), "/job/shared/build/latest".to_string()] {
            let r = client.get(&path).await.expect(307);
            let location = r.headers["location"].to_str().unwrap();
            assert!(location.ends_with(&format!("/build/{own}")), "{path}: {location}");
        }
    }
    // Nobody else learns that the hash exists.
    let anon = admin.anonymous();
    let unknown = hex::encode([7u8; 32]);
    for template in ["/api/v1/hash/{}", "/hash?sha256={}"] {
        let known = anon.get(&template.replace("{}", &sha)).await.expect_problem(404, "not-found");
        let missing = anon.get(&template.replace("{}", &unknown)).await.expect_problem(404, "not-found");
        assert_eq!(known.text, missing.text, "{template}");
        assert!(known.headers.get("location").is_none());
    }
}
