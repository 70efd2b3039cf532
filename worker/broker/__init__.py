"""The worker's side of RabbitMQ, with pika: connection, the consumer, the republisher."""
