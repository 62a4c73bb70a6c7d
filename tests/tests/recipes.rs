//! The `.wac` recipes in `compose/recipes`, composed by the real `wac compose` and run on
//! embedded wasmtime against the reference server, as the README tells users to.

#![expect(
    clippy::expect_used,
    reason = "test code: a failed step fails the test, which is how a test reports it"
)]

use std::path::Path;
use std::process::Command;

use kvplug_compose::{artifacts, seal, spin, surface};
use kvplug_tests::{reference_server, runtime, settings};

fn compose(recipe: &str, deps: &[(&str, &Path)], out: &Path) {
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../compose/recipes")
        .join(recipe);
    let mut command = Command::new("wac");
    command.arg("compose").arg(&recipe).arg("-o").arg(out);
    for (package, path) in deps {
        command
            .arg("--dep")
            .arg(format!("{package}={}", path.display()));
    }
    let output = command.output().expect("the `wac` CLI must be installed");
    assert!(
        output.status.success(),
        "wac compose {}: {}",
        recipe.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_recipe_composes_and_runs() {
    kvplug_tests::artifacts();
    let (_data, server) = reference_server();
    let dir = tempfile::tempdir().unwrap();
    let adapter = artifacts::adapter_path("http");
    let app = artifacts::fixture_path("example-app");

    let sealed_config = dir.path().join("config.wasm");
    let request = seal::Request {
        settings: vec![("url".into(), server.url())],
        layered: false,
    };
    let sealed = seal::seal(
        &std::fs::read(&adapter).unwrap(),
        &std::fs::read(artifacts::config_path("kvplug-config-static")).unwrap(),
        &request,
    )
    .unwrap();
    std::fs::write(&sealed_config, &sealed.config).unwrap();
    let env_config = artifacts::config_path("kvplug-config-env");

    // (recipe, extra dependencies, runtime wasi:config, environment)
    type Recipe<'a> = (
        &'a str,
        Vec<(&'a str, &'a Path)>,
        kvplug_runner::Settings,
        Vec<(String, String)>,
    );
    let recipes: [Recipe; 3] = [
        ("app-adapter.wac", vec![], settings(&server.url()), vec![]),
        (
            "app-sealed-adapter.wac",
            vec![("kvplug:config", &sealed_config)],
            vec![],
            vec![],
        ),
        (
            "app-adapter-env.wac",
            vec![("kvplug:config", &env_config)],
            vec![],
            vec![("KVPLUG_URL".into(), server.url())],
        ),
    ];
    for (visit, (recipe, mut deps, config, env)) in recipes.into_iter().enumerate() {
        deps.push(("kvplug:adapter", &adapter));
        deps.push(("kvplug:app", &app));
        let out = dir.path().join(recipe.replace(".wac", ".wasm"));
        compose(recipe, &deps, &out);
        let imports = surface::surface(&std::fs::read(&out).unwrap())
            .unwrap()
            .imports;
        assert_eq!(
            imports.iter().any(|i| i == seal::CONFIG_IMPORT),
            recipe == "app-adapter.wac",
            "{recipe}: {imports:?}"
        );
        let component = runtime().load(&out).unwrap();
        let output = runtime()
            .run_command_with_env(&component, &["example-app".into()], &config, &env)
            .await
            .unwrap();
        assert!(
            output.success,
            "{recipe}: {}{}",
            output.stdout, output.stderr
        );
        let expected = format!("this is visit #{}", visit + 1);
        assert!(
            output.stdout.contains(&expected),
            "{recipe}: {}",
            output.stdout
        );
    }
}

/// `adapter-spin.wac` through the real `wac compose` gives the bytes `kvplug spin` gives, and
/// an app built against Spin's WIT, linked with it by the real `wac plug`, passes the draft2
/// suite in Spin's shape.
#[tokio::test(flavor = "multi_thread")]
async fn the_spin_recipe_is_kvplug_spin_and_a_spin_app_runs_on_it() {
    kvplug_tests::artifacts();
    let (_data, server) = reference_server();
    let dir = tempfile::tempdir().unwrap();
    let adapter = artifacts::adapter_path("http");
    let shape = artifacts::shape_path("kvplug-spin-shape");
    let composed = dir.path().join("kvplug-http.spin.wasm");
    compose(
        "adapter-spin.wac",
        &[("kvplug:adapter", &adapter), ("kvplug:spin-shape", &shape)],
        &composed,
    );
    let in_process = spin::spin_shaped(
        std::fs::read(&adapter).unwrap(),
        std::fs::read(&shape).unwrap(),
    )
    .unwrap();
    // `wac compose` signs its output in a `producers` section; nothing else may differ.
    let by_wac =
        artifacts::without_custom_section(&std::fs::read(&composed).unwrap(), "producers").unwrap();
    assert!(by_wac == in_process, "wac compose and kvplug spin differ");

    let linked = dir.path().join("conformance-spin.linked.wasm");
    let output = Command::new("wac")
        .arg("plug")
        .arg(artifacts::fixture_path("conformance-spin"))
        .arg("--plug")
        .arg(&composed)
        .arg("-o")
        .arg(&linked)
        .output()
        .expect("the `wac` CLI must be installed");
    assert!(
        output.status.success(),
        "wac plug: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let component = runtime().load(&linked).unwrap();
    let output = runtime()
        .run_command(
            &component,
            &["conformance-spin".into()],
            &settings(&server.url()),
        )
        .await
        .unwrap();
    assert!(
        output.success && output.stdout.contains(" 0 failed"),
        "{}{}",
        output.stdout,
        output.stderr
    );
}
