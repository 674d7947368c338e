//! Project settings from an optional `nixl.toml` beside the .nixl file.
//! Flags and environment variables win over it; it wins over the defaults.
//!
//! ```toml
//! file = "phase2.nixl"          # the file commands use when none is given
//! provider = "local"            # default for apply and destroy
//! state_dir = ".nixl"           # where state files live, relative to this file
//! [aws]
//! profile = "gpu-lab"           # AWS_PROFILE, unless already set
//! call_timeout = 120            # seconds; also connect_timeout, read_timeout, ssm_online_timeout
//! [mlflow]
//! tracking_uri = "http://127.0.0.1:5000"   # MLFLOW_TRACKING_URI, unless already set
//! ```

use serde::de::{value::StrDeserializer, IntoDeserializer};
use serde::Deserialize;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    /// The .nixl file commands use when none is given, relative to this file.
    pub file: Option<PathBuf>,
    pub provider: Option<ProviderKind>,
    pub state_dir: Option<PathBuf>,
    pub aws: AwsConfig,
    pub mlflow: MlflowConfig,
    /// The directory the file was found in; state_dir is relative to it.
    pub dir: PathBuf,
}

/// Where apply and destroy run by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Aws,
    Local,
}

impl ProviderKind {
    /// The kind a name stands for, by the names `provider = "..."` accepts.
    fn named(name: &str) -> Option<ProviderKind> {
        let de: StrDeserializer<'_, serde::de::value::Error> = name.into_deserializer();
        ProviderKind::deserialize(de).ok()
    }
}

/// `nixl.toml` as written. `provider` is checked after parsing, so a misspelt one
/// is reported with the file and the choices rather than as a TOML type error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    file: Option<PathBuf>,
    provider: Option<String>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    aws: AwsConfig,
    #[serde(default)]
    mlflow: MlflowConfig,
}

/// Why `nixl.toml` could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    Read { path: PathBuf, source: std::io::Error },
    /// Not TOML, or a key or value nixl does not know; `message` is toml's, with the line.
    Parse { path: PathBuf, message: String },
    /// `provider` is not one nixl has.
    Provider { path: PathBuf, given: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read { path, source } => write!(f, "cannot read {}: {source}", path.display()),
            ConfigError::Parse { path, message } => write!(f, "{}: {message}", path.display()),
            ConfigError::Provider { path, given } => {
                write!(f, "{}: provider must be \"aws\" or \"local\", not {given:?}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Read { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub profile: Option<String>,
    pub region: Option<String>,
    /// Seconds to establish a connection to an AWS endpoint (default 10).
    pub connect_timeout: Option<u64>,
    /// Seconds between two reads of an answer (default 60).
    pub read_timeout: Option<u64>,
    /// Seconds one call may take to be answered (default 120).
    pub call_timeout: Option<u64>,
    /// Seconds a new node's SSM agent may take to come online (default 900).
    pub ssm_online_timeout: Option<u64>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlflowConfig {
    pub tracking_uri: Option<String>,
}

impl Config {
    /// Reads `nixl.toml` in the directory of `file`; none is the default.
    pub fn load(dir: &Path) -> Result<Config, ConfigError> {
        let path = dir.join("nixl.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config { dir: dir.into(), ..Config::default() }),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let w: Written = match toml::from_str(&text) {
            Ok(w) => w,
            Err(e) => return Err(ConfigError::Parse { path, message: e.to_string() }),
        };
        let provider = match w.provider {
            None => None,
            Some(given) => match ProviderKind::named(&given) {
                Some(k) => Some(k),
                None => return Err(ConfigError::Provider { path, given }),
            },
        };
        Ok(Config { file: w.file, provider, state_dir: w.state_dir, aws: w.aws, mlflow: w.mlflow, dir: dir.into() })
    }

    /// The settings in the directory of a .nixl file.
    pub fn beside(file: &Path) -> Result<Config, ConfigError> {
        Config::load(Config::dir_of(file))
    }

    /// The defaults, for the directory of a .nixl file.
    pub fn defaults_beside(file: &Path) -> Config {
        Config { dir: Config::dir_of(file).into(), ..Config::default() }
    }

    fn dir_of(file: &Path) -> &Path {
        file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    /// Exports the AWS profile and the MLflow URI unless the environment already has them.
    pub fn export_env(&self) {
        if let (Some(p), None) = (&self.aws.profile, std::env::var_os("AWS_PROFILE")) {
            std::env::set_var("AWS_PROFILE", p);
        }
        if let (Some(r), None) = (&self.aws.region, std::env::var_os("AWS_REGION")) {
            std::env::set_var("AWS_REGION", r);
        }
        if let (Some(u), None) = (&self.mlflow.tracking_uri, std::env::var_os("MLFLOW_TRACKING_URI")) {
            std::env::set_var("MLFLOW_TRACKING_URI", u);
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.join(self.state_dir.clone().unwrap_or_else(|| PathBuf::from(".nixl")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_settings_and_rejects_unknown_keys() {
        let d = std::env::temp_dir().join(format!("nixl-config-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("nixl.toml"),
            "file = \"p.nixl\"\nprovider = \"local\"\nstate_dir = \"st\"\n[aws]\nprofile = \"lab\"\n",
        )
        .unwrap();
        let c = Config::load(&d).unwrap();
        assert_eq!(c.provider, Some(ProviderKind::Local));
        assert_eq!(c.file.as_deref(), Some(Path::new("p.nixl")));
        assert_eq!(c.aws.profile.as_deref(), Some("lab"));
        assert_eq!(c.state_dir(), d.join("st"));
        std::fs::write(d.join("nixl.toml"), "provder = \"local\"\n").unwrap();
        let e = Config::load(&d).unwrap_err();
        assert!(matches!(&e, ConfigError::Parse { path, .. } if *path == d.join("nixl.toml")), "{e:?}");
        assert!(e.to_string().starts_with(&format!("{}: ", d.join("nixl.toml").display())), "{e}");
        assert!(e.to_string().contains("unknown field"), "{e}");
        std::fs::write(d.join("nixl.toml"), "provider = \"gcp\"\n").unwrap();
        let e = Config::load(&d).unwrap_err();
        assert!(matches!(&e, ConfigError::Provider { given, .. } if given == "gcp"), "{e:?}");
        assert_eq!(
            e.to_string(),
            format!("{}: provider must be \"aws\" or \"local\", not \"gcp\"", d.join("nixl.toml").display())
        );
        std::fs::write(d.join("nixl.toml"), "provider = \"aws\"\n").unwrap();
        assert_eq!(Config::load(&d).unwrap().provider, Some(ProviderKind::Aws));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
