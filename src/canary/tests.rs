use super::*;

fn temp(name: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("kvchaos-canary-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn plan(worker: &Path, env: Option<&str>, out: &Path) -> BuildPlan {
    BuildPlan {
        worker: worker.to_owned(),
        env: env.map(str::to_owned),
        out: out.to_owned(),
        secret_var: DEFAULT_SECRET_VAR.into(),
    }
}

fn config(built: &Built) -> Value {
    serde_json::from_str(&std::fs::read_to_string(&built.config).unwrap()).unwrap()
}

const HUB: &str = r#"
name = "hub"
main = "src/index.ts"
compatibility_date = "2025-06-01"
compatibility_flags = ["nodejs_compat"]
[[kv_namespaces]]
binding = "STATE"
id = "a"
[[d1_databases]]
binding = "DB"
database_name = "db"
database_id = "d"
[durable_objects]
bindings = [{ name = "LOCKS", class_name = "Locks" }, { name = "OTHER", class_name = "Far", script_name = "elsewhere" }]
[vars]
TOP = "1"
[build]
command = "npm run build"
[alias]
"foo" = "./vendor/foo.js"
[env.canary]
vars = { CANARY = "1" }
kv_namespaces = [{ binding = "STATE", id = "c" }, { binding = "CACHE", id = "e" }]
"#;

fn hub() -> (PathBuf, PathBuf) {
    let root = temp("hub");
    let worker = root.join("worker");
    std::fs::create_dir_all(worker.join("src")).unwrap();
    std::fs::write(worker.join("wrangler.toml"), HUB).unwrap();
    std::fs::write(
        worker.join("src/index.ts"),
        "export default { async fetch(): Promise<Response> { return new Response('hub'); } };\n",
    )
    .unwrap();
    (worker, root.join("out"))
}

#[test]
fn the_shim_imports_the_workers_entry_and_wraps_its_kv_bindings() {
    let (worker, out) = hub();
    let built = build(&plan(&worker, None, &out)).unwrap();
    assert_eq!(built.script, "hub");
    assert_eq!(built.kv, ["STATE"]);
    assert_eq!(
        built.durable_objects,
        ["Locks"],
        "only classes this Worker defines"
    );
    let shim = std::fs::read_to_string(&built.shim).unwrap();
    assert!(
        shim.contains(r#"import * as user from "../worker/src/index.ts";"#),
        "{shim}"
    );
    assert!(shim.contains(r#"const KV_BINDINGS = new Set(["STATE"]);"#));
    assert!(shim.contains(r#"const SCRIPT = "hub";"#));
    assert!(shim.contains("export class Locks extends user.Locks {"));
    assert!(!shim.contains("__KVCHAOS_"), "every placeholder is filled");
    // A version_metadata binding is added, so the shim can report its version id.
    assert!(shim.contains(r#"const VERSION_BINDING = "KVCHAOS_VERSION";"#));
    assert_eq!(
        config(&built)["version_metadata"],
        serde_json::json!({"binding": "KVCHAOS_VERSION"})
    );
    // The Worker's own files are untouched.
    assert_eq!(
        std::fs::read_to_string(worker.join("wrangler.toml")).unwrap(),
        HUB
    );
}

#[test]
fn the_config_points_back_at_the_workers_files() {
    let (worker, out) = hub();
    let built = build(&plan(&worker, None, &out)).unwrap();
    let c = config(&built);
    assert_eq!(c["main"], SHIM_FILE);
    assert_eq!(c["base_dir"], "../worker/src");
    assert_eq!(
        c["d1_databases"][0]["migrations_dir"],
        "../worker/migrations"
    );
    assert_eq!(c["build"]["cwd"], "../worker");
    assert_eq!(c["alias"]["foo"], "../worker/vendor/foo.js");
    assert_eq!(c["compatibility_flags"][0], "nodejs_compat");
    assert_eq!(c["vars"]["TOP"], "1");
}

#[test]
fn an_environment_is_flattened_with_wranglers_inheritance() {
    let (worker, out) = hub();
    let built = build(&plan(&worker, Some("canary"), &out)).unwrap();
    assert_eq!(built.script, "hub-canary");
    assert_eq!(built.kv, ["STATE", "CACHE"]);
    assert!(
        built.durable_objects.is_empty(),
        "bindings are not inherited"
    );
    let c = config(&built);
    assert_eq!(c["name"], "hub-canary");
    assert_eq!(c["vars"], serde_json::json!({"CANARY": "1"}));
    assert_eq!(c["kv_namespaces"][1]["id"], "e");
    assert!(c.get("d1_databases").is_none(), "not inherited");
    assert_eq!(c["compatibility_date"], "2025-06-01", "inherited");
    assert!(c.get("env").is_none());
}

#[test]
fn a_config_the_shim_cannot_wrap_is_explained() {
    let root = temp("bad");
    std::fs::write(
        root.join("wrangler.toml"),
        "name = \"x\"\nmain = \"i.js\"\n",
    )
    .unwrap();
    let e = build(&plan(&root, None, &root.join("out")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("declares no KV binding"), "{e}");
    std::fs::write(
        root.join("wrangler.toml"),
        "name = \"x\"\n[[kv_namespaces]]\nbinding = \"K\"\n",
    )
    .unwrap();
    let e = build(&plan(&root, None, &root.join("out")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no `main`"), "{e}");
    let e = build(&plan(&root, Some("nope"), &root.join("out")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope"), "{e}");
    // The entry point: missing, then in service-worker syntax.
    let kv = "name = \"x\"\nmain = \"i.js\"\n[[kv_namespaces]]\nbinding = \"K\"\nid = \"k\"\n";
    std::fs::write(root.join("wrangler.toml"), kv).unwrap();
    let e = build(&plan(&root, None, &root.join("out")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot be read") && e.contains("i.js"), "{e}");
    std::fs::write(
        root.join("i.js"),
        "addEventListener('fetch', (e) => e.respondWith(K.get('a')));\n",
    )
    .unwrap();
    let e = build(&plan(&root, None, &root.join("out")))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wrangler.toml") && e.contains("service-worker syntax"),
        "{e}"
    );
    // A main that a custom build writes need not exist yet.
    let custom = format!(
        "{}[build]\ncommand = \"npm run build\"\n",
        kv.replace("i.js", "dist/w.js")
    );
    std::fs::write(root.join("wrangler.toml"), custom).unwrap();
    build(&plan(&root, None, &root.join("out"))).expect("the build command writes main");
}

#[test]
fn relative_paths_walk_up_and_down() {
    assert_eq!(
        relative(Path::new("/a/b"), Path::new("/a/c/d.js")),
        "../c/d.js"
    );
    assert_eq!(relative(Path::new("/a"), Path::new("/a/x.js")), "x.js");
    assert_eq!(relative(Path::new("/a"), Path::new("/a")), ".");
    assert_eq!(import_path(Path::new("/a"), Path::new("/a/x.js")), "./x.js");
}
