//! Backends reloaded without a restart, with a real `libriassist serve` reading a configuration
//! file and simulators behind it: SIGHUP and `POST /admin/v1/backends/reload` re-read the file;
//! backends that stay keep their state, new ones are checked before they take traffic, removed
//! ones take no new work and finish what they run.

use libriassist_tests::process::*;
use libriassist_tests::sse::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const TOKEN: &str = "reload-test-token";

fn write_config(path: &Path, sims: &[&Proc], extra: &str) {
    let urls: Vec<String> = sims.iter().map(|s| format!("{:?}", s.url())).collect();
    let text = format!(
        "[backends]\nslots = 1\nollama_urls = [{}]\n{extra}",
        urls.join(", ")
    );
    std::fs::write(path, text).expect("write the configuration file");
}

fn config_path(name: &str) -> PathBuf {
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).expect("create target/tmp");
    dir.join(format!("reload-{name}-{}.toml", std::process::id()))
}

async fn backends(client: &reqwest::Client, origin: &Proc) -> Vec<serde_json::Value> {
    let body = json(client, &format!("{}/api/v1/backends", origin.url())).await;
    body["backends"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(backends: &'a [serde_json::Value], sim: &Proc) -> Option<&'a serde_json::Value> {
    backends.iter().find(|b| b["url"] == sim.url())
}

async fn started(client: &reqwest::Client, sim: &Proc) -> u64 {
    json(client, &format!("{}/sim/stats", sim.url())).await["generations_started"]
        .as_u64()
        .unwrap_or(0)
}

/// Asks `origin` to reload its backends, with `token` as the admin token.
async fn reload(client: &reqwest::Client, origin: &Proc, token: &str) -> reqwest::Response {
    client
        .post(format!("{}/admin/v1/backends/reload", origin.url()))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sighup_and_the_admin_endpoint_reload_backends_and_keep_the_state_of_those_that_stay() {
    let flags = slots_and_pace(1, 50, 10, 20);
    let a = sim(free_port(), &flags).await;
    let b = sim(free_port(), &flags).await;
    let c = sim(free_port(), &flags).await;
    let path = config_path("backends");
    write_config(&path, &[&a, &b], "");
    let origin = origin(&[
        ("LIBRIASSIST_CONFIG", path.display().to_string()),
        ("LIBRIASSIST_ADMIN_TOKEN", TOKEN.into()),
        ("LIBRIASSIST_CACHE_ENABLED", "false".into()),
    ])
    .await;
    let client = reqwest::Client::new();

    // One two-second answer on each backend (one slot each).
    let streams: Vec<_> = (0..2)
        .map(|i| spawn_stream(&client, origin.url(), format!("Question {i} ?")))
        .collect();
    eventually(Duration::from_secs(5), || async {
        let now = backends(&client, &origin).await;
        now.iter().all(|b| b["in_flight"] == 1)
    })
    .await;

    // Replace a by c, with both streams still running.
    write_config(&path, &[&b, &c], "");
    origin.signal("HUP");
    eventually(Duration::from_secs(5), || async {
        let now = backends(&client, &origin).await;
        find(&now, &c).is_some_and(|c| c["healthy"] == true)
    })
    .await;
    let now = backends(&client, &origin).await;
    let (old, kept) = (
        find(&now, &a).expect("a is listed while it finishes"),
        find(&now, &b).unwrap(),
    );
    assert_eq!(
        (
            old["retired"].clone(),
            old["healthy"].clone(),
            old["in_flight"].clone()
        ),
        (true.into(), false.into(), 1.into()),
        "{old}"
    );
    assert_eq!(
        (kept["healthy"].clone(), kept["in_flight"].clone()),
        (true.into(), 1.into()),
        "b keeps its running answer: {kept}"
    );
    assert!(kept.get("retired").is_none(), "{kept}");
    let ready = json(&client, &format!("{}/readyz", origin.url())).await;
    assert_eq!(ready["backends"], 2, "{ready}");

    for stream in streams {
        let events = stream.await.unwrap();
        assert_eq!(
            last_event(&events),
            "done",
            "running answers finish, on the retired backend too: {events:?}"
        );
    }
    let now = backends(&client, &origin).await;
    assert!(find(&now, &a).is_none(), "a is gone once idle: {now:?}");
    assert_eq!(
        find(&now, &b).unwrap()["served"],
        1,
        "b's counters carried over the reload"
    );

    // New questions go to b and c only.
    for i in 0..4 {
        let events = stream_events(&client, &origin.url(), &format!("Après {i} ?")).await;
        assert_eq!(last_event(&events), "done", "{events:?}");
    }
    assert_eq!(
        started(&client, &a).await,
        1,
        "the retired backend took no new work"
    );
    assert!(
        started(&client, &c).await >= 1,
        "the new backend takes traffic"
    );

    // The admin endpoint does the same; other changed options wait for a restart.
    write_config(&path, &[&a, &b, &c], "[generation]\nnum_predict = 50\n");
    assert_eq!(reload(&client, &origin, "wrong").await.status(), 401);
    let done = reload(&client, &origin, TOKEN).await;
    assert_eq!(done.status(), 200);
    let done: serde_json::Value = done.json().await.unwrap();
    assert_eq!(done["added"], serde_json::json!([a.url()]), "{done}");
    assert_eq!(
        done["kept"],
        serde_json::json!([b.url(), c.url()]),
        "{done}"
    );
    assert_eq!(done["retired"], serde_json::json!([]), "{done}");
    assert_eq!(
        done["restart_needed"],
        serde_json::json!(["generation"]),
        "{done}"
    );
    assert!(
        done["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["healthy"] == true),
        "checked before the answer: {done}"
    );

    // A broken file changes nothing.
    std::fs::write(&path, "[backends]\nslots = 0\n").unwrap();
    let broken = reload(&client, &origin, TOKEN).await;
    assert_eq!(broken.status(), 500);
    let body: serde_json::Value = broken.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("slots"),
        "{body}"
    );
    origin.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        backends(&client, &origin).await.len(),
        3,
        "still serving after a failed reload"
    );
    let _ = std::fs::remove_file(&path);
}
