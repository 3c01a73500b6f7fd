//! The Envoy configurations: `envoy/envoy.yaml` is the template rendered with the local values,
//! and both it and a test rendering pass `envoy --mode validate` with the built filter.

use libriassist_tests::edge::{
    envoy_or_skip, local_values, render, repo_root, template, validate, LOCAL_FILTER_CONFIG,
};
use libriassist_tests::wasm_host::filter_wasm;

#[test]
fn envoy_yaml_is_the_template_with_local_values() {
    let rendered = render(&template(), &local_values());
    let local = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml"))
        .expect("read envoy/envoy.yaml");
    assert!(
        rendered == local,
        "envoy/envoy.yaml differs from envoy/envoy.template.yaml rendered with the local values; re-render it"
    );
    // The configuration in it is one the filter accepts.
    libriassist_filter::config::Config::parse(LOCAL_FILTER_CONFIG.as_bytes())
        .expect("local filter config");
}

#[test]
fn configurations_pass_envoy_validate() {
    let Some(envoy) = envoy_or_skip("configurations_pass_envoy_validate") else {
        return;
    };
    let wasm = filter_wasm();
    let out = validate(&envoy, &repo_root().join("envoy/envoy.yaml"));
    assert!(
        out.status.success(),
        "envoy.yaml:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut values = local_values();
    for (name, value) in values.iter_mut() {
        match *name {
            "LISTEN_PORT" => *value = "18080".into(),
            "WASM_PATH" => *value = wasm.display().to_string(),
            "FILTER_CONFIG" => {
                *value = r#"{"trusted_proxies":["127.0.0.1"],"max_concurrent_streams":2}"#.into()
            }
            _ => {}
        }
    }
    let dir =
        std::env::temp_dir().join(format!("libriassist-envoy-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("envoy.yaml");
    std::fs::write(&path, render(&template(), &values)).unwrap();
    let out = validate(&envoy, &path);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "rendered template:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A configuration the filter refuses makes Envoy refuse the plugin, with the reason logged.
    for (name, value) in values.iter_mut() {
        if *name == "FILTER_CONFIG" {
            *value = r#"{"cache":{"timeout_ms":0}}"#.into();
        }
    }
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&path, render(&template(), &values)).unwrap();
    let out = validate(&envoy, &path);
    let _ = std::fs::remove_dir_all(&dir);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "an invalid filter configuration was accepted"
    );
    assert!(
        log.contains("configuration refused: `cache.timeout_ms` is 0"),
        "{log}"
    );
}

/// The deployed Envoys (compose, Kubernetes sidecar) are written by hand, not rendered from the
/// template, so the settings the filter cannot work without are checked here, and in the local
/// one too: offline validation accepts a plugin that would hang every chat request.
#[test]
fn deployed_envoys_wire_the_filter_like_the_local_one() {
    for file in [
        "envoy/envoy.yaml",
        "envoy/envoy.compose.yaml",
        "deploy/k8s/base/envoy-sidecar.yaml",
    ] {
        let text = std::fs::read_to_string(repo_root().join(file)).expect(file);
        for needle in [
            // Without it Envoy never delivers the body of a request whose headers the filter holds.
            "allow_on_headers_stop_iteration: true",
            // The dashboards' VM reload series is named after the plugin.
            "name: libriassist\n",
            "root_id: libriassist\n",
            // The filter takes the client to be the peer Envoy appends to X-Forwarded-For.
            "use_remote_address: true",
            // The filter matches paths exactly.
            "normalize_path: true",
            "merge_slashes: true",
            // Envoy's own upstream-failure replies are JSON like every other error.
            "local_reply_config:",
        ] {
            assert!(
                text.contains(needle),
                "{file} lacks `{}`",
                needle.trim_end()
            );
        }
        let config = text
            .lines()
            .skip_while(|line| !line.contains("envoy.filters.http.wasm"))
            .find_map(|line| line.trim().strip_prefix("value: '"))
            .and_then(|rest| rest.strip_suffix('\''))
            .unwrap_or_else(|| panic!("{file}: no filter configuration string"));
        let config = libriassist_filter::config::Config::parse(config.as_bytes())
            .unwrap_or_else(|e| panic!("{file}: filter configuration refused: {e:?}"));
        // Behind hops Envoy trusts, the last X-Forwarded-For entry is the hop, not the client.
        assert!(
            !(config.peer_from_forwarded_for && text.contains("xff_num_trusted_hops")),
            "{file}: `peer_from_forwarded_for` with `xff_num_trusted_hops`: every client behind \
             the trusted hop would be one client"
        );
    }
}
