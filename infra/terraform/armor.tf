# Cloud Armor in front of the collector's load balancer (BackendConfig "collector" in
# infra/k8s/overlays/gcp/collector-ingress.yaml names this policy): a per-client rate limit
# (the collector answers 2xx only for what it keeps, so a flood is cut at the edge, before it
# costs pods, Pub/Sub or spool) and Adaptive Protection against layer-7 DDoS. Only /v1/ is
# routed at all (the Ingress), so /metrics and /docs are not reachable from outside.

resource "google_compute_security_policy" "collector" {
  name        = "collector-edge"
  description = "Edge policy of the event collector: per-IP rate limit, adaptive protection."

  adaptive_protection_config {
    layer_7_ddos_defense_config {
      enable = true
    }
  }

  rule {
    action      = "throttle"
    priority    = 1000
    description = "Per-client request rate limit (SDKs batch; a client above this is abusive)."
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = var.collector_rate_limit_per_minute
        interval_sec = 60
      }
    }
  }

  # Log4Shell-style lookups (CVE-2021-44228 and kin) in headers or bodies: nothing Java sits
  # behind the collector, but its events flow on into the warehouse and Slack.
  rule {
    action      = "deny(403)"
    priority    = 900
    description = "Block JNDI lookup attempts (preconfigured WAF rule cve-canary)."
    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  rule {
    action      = "allow"
    priority    = 2147483647
    description = "Default: allow (the Ingress routes only the Segment API)."
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }

  depends_on = [google_project_service.enabled]
}
