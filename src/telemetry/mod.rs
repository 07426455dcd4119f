//! Telemetry (temporary stub; the real module is being written on the telemetry branch).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    ApiServer,
    Etcd,
    ControllerManager,
    Scheduler,
    Kubelet,
    ContainerRuntime,
}

#[derive(Clone)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    pub fn in_memory(_capacity: usize) -> Telemetry {
        Telemetry {
            provider: SdkTracerProvider::builder().build(),
        }
    }
    pub fn tracer(&self, _c: Component) -> SdkTracer {
        self.provider.tracer("kubeactor")
    }
    pub fn shutdown(&self) {}
}

pub const TRACEPARENT_ANNOTATION: &str = "kubeactor.io/traceparent";

pub fn inject(_cx: &Context, _meta: &mut ObjectMeta) {}

pub fn extract(_meta: &ObjectMeta) -> Context {
    Context::new()
}
