//! The defined flows: [`FlowRegistry`] and [`FlowEngine::define`].

use std::{
    collections::{BTreeMap, HashMap},
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use super::FlowEngine;
use crate::process::{
    FlowId,
    flow::Flow,
    validate::{Compiled, FlowErrors, Limits, compile},
};

/// Why a flow could not be defined.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DefineError {
    /// The flow has problems; each names its block and reason.
    #[error("the flow is invalid")]
    Invalid(#[from] FlowErrors),
    /// This version of the flow is defined with other content.
    #[error("flow {flow} version {version} is already defined with other content")]
    VersionTaken {
        /// The flow.
        flow: FlowId,
        /// The version.
        version: u32,
    },
}

/// The defined flows, every version of each, checked against [`Limits`].
pub struct FlowRegistry {
    limits: Limits,
    flows: RwLock<HashMap<FlowId, BTreeMap<u32, Arc<Compiled>>>>,
}

impl fmt::Debug for FlowRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flows = self.flows.read().unwrap_or_else(PoisonError::into_inner);
        let versions: BTreeMap<&str, Vec<u32>> = flows
            .iter()
            .map(|(id, v)| (id.as_str(), v.keys().copied().collect()))
            .collect();
        f.debug_struct("FlowRegistry")
            .field("limits", &self.limits)
            .field("flows", &versions)
            .finish()
    }
}

impl FlowRegistry {
    /// An empty registry checking flows against `limits`.
    pub fn new(limits: Limits) -> Self {
        FlowRegistry {
            limits,
            flows: RwLock::new(HashMap::new()),
        }
    }

    /// The limits flows are checked against.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Checks and adds `flow` at its version; returns the version. New instances start on the
    /// highest version defined.
    pub fn define(&self, flow: Flow) -> Result<u32, DefineError> {
        let compiled = compile(&flow, &self.limits)?;
        let mut flows = self.flows.write().unwrap_or_else(PoisonError::into_inner);
        let versions = flows.entry(flow.id.clone()).or_default();
        match versions.get(&flow.version) {
            Some(existing) if existing.flow == flow => {}
            Some(_) => {
                return Err(DefineError::VersionTaken {
                    flow: flow.id,
                    version: flow.version,
                });
            }
            None => {
                versions.insert(flow.version, Arc::new(compiled));
            }
        }
        Ok(flow.version)
    }

    /// The highest version of flow `id`.
    pub fn latest_version(&self, id: &FlowId) -> Option<u32> {
        self.latest(id).map(|(v, _)| v)
    }

    /// Version `version` of flow `id`, as defined.
    pub fn flow(&self, id: &FlowId, version: u32) -> Option<Flow> {
        self.get(id, version).map(|c| c.flow.clone())
    }

    pub(crate) fn latest(&self, id: &FlowId) -> Option<(u32, Arc<Compiled>)> {
        let flows = self.flows.read().unwrap_or_else(PoisonError::into_inner);
        flows
            .get(id)?
            .last_key_value()
            .map(|(v, c)| (*v, c.clone()))
    }

    pub(crate) fn get(&self, id: &FlowId, version: u32) -> Option<Arc<Compiled>> {
        let flows = self.flows.read().unwrap_or_else(PoisonError::into_inner);
        flows.get(id)?.get(&version).cloned()
    }
}

impl FlowEngine {
    /// The defined flows.
    pub fn registry(&self) -> &FlowRegistry {
        &self.inner.registry
    }

    /// Checks and defines `flow`; see [`FlowRegistry::define`].
    pub fn define(&self, flow: Flow) -> Result<u32, DefineError> {
        self.inner.registry.define(flow)
    }
}
