//! Every daemon's one family of signalling messages, `<daemon>_signalling_messages_total
//! {direction="sent|received", type}`: the same name and labels in each daemon, so one query
//! (or one dashboard panel) counts the signalling of a whole site, whatever the protocol.
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use mipcast_wire::mh::mh_type;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignallingLabels {
    /// sent or received.
    pub direction: &'static str,
    /// The message type in snake case (binding_update, pim_hello, mld_report, ...).
    pub r#type: &'static str,
}

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sent,
    Received,
}

impl Direction {
    fn label(self) -> &'static str {
        match self {
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

/// The family's handle; clones share the values.
#[derive(Clone, Debug, Default)]
pub struct Signalling(Family<SignallingLabels, Counter>);

impl Signalling {
    /// Registers the family as `signalling_messages` in `registry` (the daemon's prefixed
    /// sub-registry) with the `known` series at 0, so rates over them work from the start.
    pub fn register(&self, registry: &mut Registry, known: &[(Direction, &'static str)]) {
        for &(direction, r#type) in known {
            self.0.get_or_create_owned(&SignallingLabels {
                direction: direction.label(),
                r#type,
            });
        }
        registry.register(
            "signalling_messages",
            "Signalling messages sent and received, by direction and message type",
            self.0.clone(),
        );
    }

    pub fn count(&self, direction: Direction, r#type: &'static str) {
        self.0
            .get_or_create(&SignallingLabels {
                direction: direction.label(),
                r#type,
            })
            .inc();
    }

    pub fn sent(&self, r#type: &'static str) {
        self.count(Direction::Sent, r#type);
    }

    pub fn received(&self, r#type: &'static str) {
        self.count(Direction::Received, r#type);
    }

    /// Counts a Mobility Header message (`bytes` from the MH header on) by its MH type.
    pub fn mobility(&self, direction: Direction, bytes: &[u8]) {
        self.count(direction, mh_type_label(bytes));
    }

    /// The current value of one series (tests, status pages).
    pub fn get(&self, direction: Direction, r#type: &'static str) -> u64 {
        self.0
            .get_or_create(&SignallingLabels {
                direction: direction.label(),
                r#type,
            })
            .get()
    }
}

/// The `type` label of a Mobility Header message: its MH type (RFC 6275 §6.1), `other` for
/// types the daemons do not speak, `malformed` when the header is too short to have one.
pub fn mh_type_label(bytes: &[u8]) -> &'static str {
    match bytes.get(2) {
        Some(&mh_type::BINDING_REFRESH_REQUEST) => "binding_refresh_request",
        Some(&mh_type::BINDING_UPDATE) => "binding_update",
        Some(&mh_type::BINDING_ACK) => "binding_ack",
        Some(&mh_type::BINDING_ERROR) => "binding_error",
        Some(_) => "other",
        None => "malformed",
    }
}

/// The MH types the home agent and the MMA receive and send.
pub const AGENT_MH: &[(Direction, &str)] = &[
    (Direction::Received, "binding_update"),
    (Direction::Sent, "binding_ack"),
    (Direction::Sent, "binding_refresh_request"),
    (Direction::Sent, "binding_error"),
];

/// The MH types a mobile node sends and receives.
pub const NODE_MH: &[(Direction, &str)] = &[
    (Direction::Sent, "binding_update"),
    (Direction::Received, "binding_ack"),
    (Direction::Received, "binding_refresh_request"),
    (Direction::Received, "binding_error"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_family_by_direction_and_type() {
        let mut registry = Registry::default();
        let s = Signalling::default();
        s.register(registry.sub_registry_with_prefix("home_agent"), AGENT_MH);
        s.mobility(Direction::Received, &[59, 1, mh_type::BINDING_UPDATE, 0]);
        s.mobility(Direction::Received, &[59, 1, mh_type::BINDING_UPDATE, 0]);
        s.mobility(Direction::Sent, &[59, 1, mh_type::BINDING_ACK, 0]);
        s.mobility(Direction::Received, &[59]);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "home_agent_signalling_messages_total{direction=\"received\",type=\"binding_update\"} 2",
            "home_agent_signalling_messages_total{direction=\"sent\",type=\"binding_ack\"} 1",
            "home_agent_signalling_messages_total{direction=\"sent\",type=\"binding_error\"} 0",
            "home_agent_signalling_messages_total{direction=\"received\",type=\"malformed\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
