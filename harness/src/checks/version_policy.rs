//! scs-0210-v2 Kubernetes version policy (being written).
