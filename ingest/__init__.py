"""The ingress: verify each webhook and write its exact signed bytes to Kafka before answering."""
