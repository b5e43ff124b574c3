"""The foundation: settings, Kafka and ClickHouse plumbing, the local broker. Imports only
`schemas`; every stage and command imports it."""
