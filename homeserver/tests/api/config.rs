//! Configuration: the example file documents every option, bad values stop start-up naming the
//! key (exit code 2), secrets never print.

use std::process::Command;

use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use hearth::{Config, config::Secret};
use serde_json::Value;

fn example_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.toml")
}

fn keys(prefix: &str, value: &Value, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            if child.is_object() {
                keys(&path, child, out);
            } else {
                out.push(path);
            }
        }
    }
}

#[test]
fn the_example_config_parses_and_documents_every_option() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(&text));
    let parsed = Config::from_figment(figment).expect("config.example.toml is valid");
    assert_eq!(parsed.server_name, "localhost");

    let mut all = Vec::new();
    keys("", &serde_json::to_value(Config::default()).unwrap(), &mut all);
    let example: Value = Figment::from(Toml::string(&text)).extract().unwrap();
    let mut documented = Vec::new();
    keys("", &example, &mut documented);
    for key in all {
        let (table, leaf) = key.rsplit_once('.').unwrap_or(("", &key));
        let commented =
            text.contains(&format!("# {leaf} =")) && (table.is_empty() || text.contains(&format!("[{table}]")));
        assert!(documented.contains(&key) || commented, "config.example.toml does not document `{key}`");
    }
}

#[test]
fn invalid_values_name_the_key() {
    let cases = [
        ("listen.client = \"not an address\"", "listen.client"),
        ("server_name = \"bad name!\"", "server_name"),
        ("[registration]\nmode = \"sometimes\"", "registration.mode"),
        ("[registration]\nmode = \"token\"", "registration.tokens"),
        ("[database]\nurl = \"mysql://x\"", "database.url"),
        ("[rate_limits.login]\nperiod_ms = 0\nburst = 1", "rate_limits.login"),
        ("no_such_option = 1", "no_such_option"),
        ("[auth]\nargon2_iterations = \"many\"", "auth.argon2_iterations"),
    ];
    for (toml, key) in cases {
        let figment = Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml));
        let error = Config::from_figment(figment).expect_err(toml).to_string();
        assert!(error.contains(key), "{toml:?} gave {error:?}, which does not name {key}");
    }
}

#[test]
fn the_binary_exits_with_code_2_on_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .current_dir(dir.path())
        .env("HEARTH_LISTEN__CLIENT", "nonsense")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen.client"), "{stderr}");

    let missing = Command::new(env!("CARGO_BIN_EXE_hearth"))
        .current_dir(dir.path())
        .args(["--config", "nope.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature, not ours
fn environment_variables_override_the_file() {
    // Config::load reads the real environment; this checks the same layering with figment's Env
    // provider inside a jail so parallel tests do not see the variables.
    figment::Jail::expect_with(|jail| {
        jail.create_file("hearth.toml", "server_name = \"from-file.example\"\n[registration]\nmode = \"closed\"")?;
        jail.set_env("HEARTH_SERVER_NAME", "from-env.example");
        jail.set_env("HEARTH_DATABASE__MAX_CONNECTIONS", "3");
        jail.set_env("HEARTH_TEST_POSTGRES_URL", "ignored by the server");
        let config = Config::load(Some(std::path::Path::new("hearth.toml"))).expect("loads");
        assert_eq!(config.server_name, "from-env.example");
        assert_eq!(config.database.max_connections, Some(3));
        assert_eq!(config.database_connections(), 3);
        assert_eq!(config.registration.mode, hearth::config::RegistrationMode::Closed);
        Ok(())
    });
}

#[test]
fn secrets_never_print() {
    let mut config = Config::default();
    config.database.url = Secret::new("postgres://user:hunter2@db/hearth");
    config.registration.tokens = vec![Secret::new("invite-only-token")];
    let printed = format!("{config:?}");
    assert!(!printed.contains("hunter2") && !printed.contains("invite-only-token"), "{printed}");
}
