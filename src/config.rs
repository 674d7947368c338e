//! Project settings from an optional `nixl.toml` beside the .nixl file.
//! Flags and environment variables win over it; it wins over the defaults.
//!
//! ```toml
//! file = "phase2.nixl"          # the file commands use when none is given
//! provider = "local"            # default for apply and destroy
//! state_dir = ".nixl"           # where state files live, relative to this file
//! [aws]
//! profile = "gpu-lab"           # AWS_PROFILE, unless already set
//! [mlflow]
//! tracking_uri = "http://127.0.0.1:5000"   # MLFLOW_TRACKING_URI, unless already set
//! ```

use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The .nixl file commands use when none is given, relative to this file.
    pub file: Option<PathBuf>,
    pub provider: Option<String>,
    pub state_dir: Option<PathBuf>,
    #[serde(default)]
    pub aws: AwsConfig,
    #[serde(default)]
    pub mlflow: MlflowConfig,
    /// The directory the file was found in; state_dir is relative to it.
    #[serde(skip)]
    pub dir: PathBuf,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub profile: Option<String>,
    pub region: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MlflowConfig {
    pub tracking_uri: Option<String>,
}

impl Config {
    /// Reads `nixl.toml` in the directory of `file`; none is the default.
    pub fn load(dir: &Path) -> Result<Config, String> {
        let path = dir.join("nixl.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config { dir: dir.into(), ..Config::default() }),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut c: Config = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(p) = &c.provider {
            if p != "aws" && p != "local" {
                return Err(format!("{}: provider must be \"aws\" or \"local\", not {p:?}", path.display()));
            }
        }
        c.dir = dir.into();
        Ok(c)
    }

    /// The settings beside a .nixl file; an unreadable nixl.toml is reported and ignored.
    pub fn beside(file: &Path) -> Config {
        let dir = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Config::load(dir).unwrap_or_else(|e| {
            eprintln!("warning: {e}; using defaults");
            Config { dir: dir.into(), ..Config::default() }
        })
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
        assert_eq!(c.provider.as_deref(), Some("local"));
        assert_eq!(c.file.as_deref(), Some(Path::new("p.nixl")));
        assert_eq!(c.aws.profile.as_deref(), Some("lab"));
        assert_eq!(c.state_dir(), d.join("st"));
        std::fs::write(d.join("nixl.toml"), "provder = \"local\"\n").unwrap();
        assert!(Config::load(&d).unwrap_err().contains("unknown field"));
        std::fs::write(d.join("nixl.toml"), "provider = \"gcp\"\n").unwrap();
        assert!(Config::load(&d).unwrap_err().contains("must be"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
