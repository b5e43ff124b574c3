"""Deployment and operation: `core` (the foundation every stage imports) and `control` (the
`waflow` command and the tools that drive the stages), plus the files that run the services:
migrations, the Kafka pom, compose, Kubernetes, Grafana."""
