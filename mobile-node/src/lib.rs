//! mipcast mobile node: movement detection from Router Advertisements, registration with the
//! site's MMA and the home agent (or plain MIPv6 with the home agent alone), and the kernel
//! state that receives the terminal's multicast tunnel and sends its reverse tunnel.
//!
//! - [`config`]: the YAML configuration.
//! - [`core`]: the protocol logic as a pure state machine.
//! - [`shell`]: the tokio I/O shell that runs it against sockets and the kernel.
//! - [`host`]: interface facts from sysfs and the link quality files.
//! - [`carrier`]: carrier loss within milliseconds (the kernel may defer its notification).
//! - [`metrics`]: the Prometheus metrics.
//! - `announce`: unsolicited Neighbor Advertisements for the addresses it adds.
//! - [`radio`]: link quality from the kernel's nl80211 (Wi-Fi) signal readings, probed.

#[cfg(feature = "shell")]
mod announce;
#[cfg(feature = "shell")]
pub mod carrier;
#[cfg(feature = "shell")]
pub mod config;
pub mod core;
#[cfg(feature = "shell")]
pub mod host;
#[cfg(feature = "shell")]
pub mod interruption;
#[cfg(feature = "shell")]
pub mod metrics;
#[cfg(feature = "shell")]
pub mod radio;
#[cfg(feature = "shell")]
pub mod shell;
#[cfg(feature = "shell")]
pub mod status;
