"""What starts and configures the real services: settings, the Kafka broker, topics, ClickHouse."""
